"""Where the removed channels' contribution goes: a pruned channel's activation is rarely zero on average, so every
conv that read it shifts. These estimate that shift (from BatchNorm without data, or measured on images) and move
it into the readers' BatchNorm mean or bias (issue 34; measured in benchmarks/results/bn-settle).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from posebench.compress.channel_groups import ChannelGroup
from posebench.errors import InvalidInputError


def expected_activation(group: ChannelGroup) -> torch.Tensor | None:
    """Each channel's mean activation, from its producers' BatchNorm (output ~ N(shift, scale^2) by construction)
    through their activation (SiLU: Gauss-Hermite quadrature), summed over producers (a residual chain adds
    them). None when a depthwise conv sits on the path (its own BatchNorm and activation reshape the mean)."""
    import numpy as np

    if group.depthwise:
        return None
    nodes, weights = (torch.tensor(v, dtype=torch.float32) for v in np.polynomial.hermite.hermgauss(16))
    total = torch.zeros(group.size)
    for block, rows in group.producers:
        mean, std = block.bn.bias.detach()[rows], block.bn.weight.detach().abs()[rows]
        act = getattr(block, "act", None)
        if isinstance(act, nn.SiLU):
            y = mean[:, None] + math.sqrt(2.0) * std[:, None] * nodes[None, :]
            total += (torch.nn.functional.silu(y) * weights).sum(1) / math.sqrt(math.pi)
        elif act is None or isinstance(act, nn.Identity):
            total += mean
        else:
            return None
    return total


def expected_shifts(groups: list[ChannelGroup],
                    removed: dict[str, torch.Tensor]) -> dict[int, tuple[nn.Conv2d, torch.Tensor]]:
    """id(conv) -> (conv, what the removed input channels add to each of its outputs on average), estimated without
    data from the producers' BatchNorm (`expected_activation`; groups behind a depthwise conv are left out)."""
    shifts: dict[int, tuple[nn.Conv2d, torch.Tensor]] = {}
    for group in groups:
        drop = removed.get(group.name)
        if drop is None or not drop.numel():
            continue
        mean = expected_activation(group)
        if mean is None:
            continue
        for conv, index in group.consumers:
            w = conv.weight.detach()[:, index[drop]].sum((2, 3))  # (out, removed)
            _, total = shifts.get(id(conv), (conv, torch.zeros(conv.out_channels)))
            shifts[id(conv)] = (conv, total + w @ mean[drop])
    return shifts


@torch.no_grad()
def measured_shifts(net: nn.Module, groups: list[ChannelGroup], removed: dict[str, torch.Tensor],
                    images: torch.Tensor, batch: int = 8) -> dict[int, tuple[nn.Conv2d, torch.Tensor]]:
    """id(conv) -> (conv, what the removed input channels add to each of its outputs, averaged over `images` and
    positions), measured on the unpruned `net`: the readers' inputs as the network computes them (through
    depthwise convs too), the zero padding at the borders included. No label is read."""
    masks: dict[int, tuple[nn.Conv2d, torch.Tensor]] = {}
    for group in groups:
        drop = removed.get(group.name)
        if drop is None or not drop.numel():
            continue
        for conv, index in group.consumers:
            conv_mask = masks.setdefault(id(conv), (conv, torch.zeros(conv.in_channels, dtype=torch.bool)))[1]
            conv_mask[index[drop]] = True
    sums = {key: torch.zeros(conv.out_channels, dtype=torch.float64) for key, (conv, _) in masks.items()}
    seen = {"images": 0}

    def hook(conv: nn.Conv2d, inputs: tuple[torch.Tensor, ...]) -> None:
        mask = masks[id(conv)][1].to(inputs[0].dtype)[None, :, None, None]
        lost = torch.nn.functional.conv2d(inputs[0] * mask, conv.weight, None, conv.stride, conv.padding,
                                          conv.dilation, conv.groups)
        sums[id(conv)] += lost.double().mean((2, 3)).sum(0)

    handles = [conv.register_forward_pre_hook(hook) for conv, _ in masks.values()]
    was_training = net.training
    try:
        net.eval()
        for start in range(0, len(images), batch):
            chunk = images[start:start + batch]
            net(chunk.to(next(net.parameters()).dtype))
            seen["images"] += len(chunk)
    finally:
        for handle in handles:
            handle.remove()
        net.train(was_training)
    if not seen["images"]:
        raise InvalidInputError("measured compensation needs at least one image")
    return {key: (conv, (sums[key] / seen["images"]).float()) for key, (conv, _) in masks.items()}


def compensate_(shifts: dict[int, tuple[nn.Conv2d, torch.Tensor]], after: dict[int, nn.Module]) -> None:
    """What the removed channels gave their readers on average moves into the readers' BatchNorm mean (or bias):
    a removed channel's activation is rarely zero, and without this every reader shifts."""
    for key, (conv, shift) in shifts.items():
        bn = after.get(key)
        if isinstance(bn, nn.BatchNorm2d):  # conv -> BN: the BN subtracts its running mean
            bn.running_mean -= shift
        elif conv.bias is not None:
            conv.bias.data += shift
        else:
            conv.bias = nn.Parameter(shift.clone())
