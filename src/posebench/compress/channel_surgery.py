"""The surgery of channel pruning: rank a group's channels, remove chosen channels from every conv and BatchNorm
of their groups, keep the model's recorded channel counts true (see `posebench.compress.channels` for the groups
and why they are stated, not traced)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from posebench.compress.channel_groups import TAYLOR_ATTRIBUTE, ChannelGroup
from posebench.compress.channel_shifts import compensate_, expected_shifts
from posebench.compress.reconstruct import KeptChannels
from posebench.errors import InvalidInputError


def channel_scores(group: ChannelGroup, criterion: str) -> torch.Tensor:
    """Per channel of `group`, how much it matters by `criterion` (higher: kept first)."""
    total = torch.zeros(group.size)
    for block, rows in group.producers:
        if criterion == "taylor":  # |sum p x dL/dp| on the recovery loss (posebench.compress.taylor)
            importance = getattr(block.conv, TAYLOR_ATTRIBUTE, None)
            if importance is None:
                raise InvalidInputError(f"criterion: taylor: group {group.name} has no importance: run "
                                        "posebench.compress.taylor.taylor_importance_ on labelled batches first")
            total += importance[rows]
        elif criterion == "bn_scale":
            total += block.bn.weight.detach().abs()[rows]
        else:
            total += block.conv.weight.detach().flatten(1).norm(dim=1)[rows]
    return total


def _keep_rows(tensor: torch.Tensor, drop: set[int], dim: int) -> torch.Tensor:
    keep = torch.tensor([i for i in range(tensor.shape[dim]) if i not in drop], dtype=torch.long)
    return tensor.detach().index_select(dim, keep).clone()


def apply_removals_(groups: list[ChannelGroup], removed: dict[str, torch.Tensor],
                    after: dict[int, nn.Module] | None = None,
                    shifts: dict[int, tuple[nn.Conv2d, torch.Tensor]] | None = None) -> dict[int, KeptChannels]:
    """Remove channels `removed[group.name]` (indices into the group) from every conv and BatchNorm, all at once:
    groups can share a conv (C2f's two halves are rows of one cv1), so indices stay in original coordinates.
    `after` (id(conv) -> the BatchNorm after it): compensate the readers for the removed channels' mean first, by
    `shifts` (`measured_shifts`) or, without them, by the data-free estimate (`expected_shifts`).
    Returns what each changed conv kept (id(conv) -> rows and columns, original coordinates)."""
    if after is not None:
        compensate_(shifts if shifts is not None else expected_shifts(groups, removed), after)
    rows: dict[int, tuple[Any, set[int]]] = {}
    cols: dict[int, tuple[nn.Conv2d, set[int]]] = {}
    depthwise: dict[int, tuple[Any, set[int]]] = {}
    for group in groups:
        drop = removed.get(group.name)
        if drop is None or not drop.numel():
            continue
        for block, index in group.producers:
            rows.setdefault(id(block), (block, set()))[1].update(index[drop].tolist())
        for conv, index in group.consumers:
            cols.setdefault(id(conv), (conv, set()))[1].update(index[drop].tolist())
        for block in group.depthwise:
            depthwise.setdefault(id(block), (block, set()))[1].update(drop.tolist())
    kept = _kept_channels(rows, cols, depthwise)
    for block, drop in list(rows.values()) + list(depthwise.values()):
        conv, bn = block.conv, block.bn
        conv.weight = nn.Parameter(_keep_rows(conv.weight, drop, 0))
        if conv.bias is not None:
            conv.bias = nn.Parameter(_keep_rows(conv.bias, drop, 0))
        conv.out_channels = conv.weight.shape[0]
        if conv.groups > 1:  # depthwise: one input per output
            conv.in_channels = conv.groups = conv.out_channels
        bn.weight = nn.Parameter(_keep_rows(bn.weight, drop, 0))
        bn.bias = nn.Parameter(_keep_rows(bn.bias, drop, 0))
        bn.running_mean = _keep_rows(bn.running_mean, drop, 0)
        bn.running_var = _keep_rows(bn.running_var, drop, 0)
        bn.num_features = bn.weight.shape[0]
    for conv, drop in cols.values():
        conv.weight = nn.Parameter(_keep_rows(conv.weight, drop, 1))
        conv.in_channels = conv.weight.shape[1]
    return kept


def _kept_channels(rows: dict[int, tuple[Any, set[int]]], cols: dict[int, tuple[nn.Conv2d, set[int]]],
                   depthwise: dict[int, tuple[Any, set[int]]]) -> dict[int, KeptChannels]:
    """Before removal: per changed conv, the output rows and input columns that stay."""
    out_drop: dict[int, tuple[nn.Conv2d, set[int]]] = {}
    for block, drop in list(rows.values()) + list(depthwise.values()):
        out_drop.setdefault(id(block.conv), (block.conv, set()))[1].update(drop)
    convs = {key: conv for key, (conv, _) in list(out_drop.items()) + list(cols.items())}
    kept = {}
    for key, conv in convs.items():
        no_rows, no_cols = out_drop.get(key, (conv, set()))[1], cols.get(key, (conv, set()))[1]
        in_channels = conv.weight.shape[1] * conv.groups
        kept[key] = KeptChannels(rows=torch.tensor([i for i in range(conv.out_channels) if i not in no_rows]),
                                 cols=torch.tensor([i for i in range(in_channels) if i not in no_cols]),
                                 lost_inputs=bool(no_cols))
    return kept


def fix_attributes(net: nn.Module) -> None:
    """Blocks that record a channel count use it in forward (C2f.forward_split); both halves must match."""
    for name, m in net.named_modules():
        if type(m).__name__ in ("C2f", "C3k2"):
            if m.cv1.conv.out_channels % 2:
                raise RuntimeError(f"{name}: the two halves of cv1 were pruned unevenly: please report this")
            m.c = m.cv1.conv.out_channels // 2


def keep_count(channels: int, ratio: float, round_to: int) -> int:
    """Channels kept of `channels` when removing `ratio` of them, a multiple of `round_to` (at least one)."""
    kept = channels * (1.0 - ratio)
    kept = max(round_to, int(math.ceil(kept / round_to) * round_to)) if round_to > 1 else max(1, int(math.ceil(kept)))
    return min(channels, kept)
