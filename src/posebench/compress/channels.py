"""Structured (channel) pruning of Ultralytics pose models: fewer channels, a smaller dense model every runtime
runs faster.

Why not Torch-Pruning's DepGraph (1.6.1, tried first): on yolo11n-pose its dependency graph maps the
`concat(chunk(cv1(x)), m(...))` of a C3k2 with a C3k inside onto indices past the end of the producing conv
(index 511 of a 256-channel conv), and enumerating its groups through C2PSA's attention reshapes took more than
five minutes on two cores. The couplings that matter in these models are few and known, so posebench states them:

- **Bottleneck** (inside C2f, C3k2, C3k, of YOLOv8, YOLO11, YOLO26): the hidden channels between `cv1` and `cv2`;
- **SPPF**: the hidden channels of `cv1`, which reach `cv2` four times (x and three max-pools, concatenated);
- **head branches** (box `cv2`, class `cv3`, keypoint `cv4`, and YOLO26's one-to-one copies): the channels
  between consecutive convolutions of each branch at each level, through YOLO11's depthwise convs, into the
  prediction convs (`cv4_kpts` / `cv4_sigma` for Pose26). The prediction convs' outputs are never pruned.

Each group's channels are ranked (L2 norm of the producing conv's filters, or |BatchNorm scale|), the lowest are
removed from every conv and BatchNorm of the group, and the model stays an Ultralytics model: same classes, the
same forward, smaller tensors. Everything between blocks (the channels a block hands to the next) is untouched,
which is what keeps this safe without a traced graph.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from posebench.errors import InvalidInputError

CRITERIA = ("magnitude", "bn_scale")
BRANCHES = ("cv2", "cv3", "cv4", "one2one_cv2", "one2one_cv3", "one2one_cv4")


@dataclass
class ChannelGroup:
    """Channels produced by `producer` (a conv + its BatchNorm), carried through `depthwise` convs, and read by
    `consumers` (conv, repeat): a consumer reads the group `repeat` times, at offsets of the group's size."""

    name: str
    producer: Any  # an Ultralytics Conv (conv + bn)
    consumers: list[tuple[nn.Conv2d, int]]
    depthwise: list[Any] = field(default_factory=list)  # Ultralytics DWConv blocks on the path

    @property
    def channels(self) -> int:
        return int(self.producer.conv.out_channels)


def _conv_block(m: Any) -> bool:
    return isinstance(getattr(m, "conv", None), nn.Conv2d) and isinstance(getattr(m, "bn", None), nn.BatchNorm2d)


def _is_depthwise(m: Any) -> bool:
    return _conv_block(m) and m.conv.groups > 1 and m.conv.groups == m.conv.in_channels == m.conv.out_channels


def _flatten(seq: nn.Module) -> list[Any]:
    """A head branch's layers in call order: Conv / DWConv blocks and the final bare Conv2d."""
    if _conv_block(seq) or isinstance(seq, nn.Conv2d):
        return [seq]
    out = []
    for child in seq.children():
        out += _flatten(child)
    return out


def find_groups(net: nn.Module) -> list[ChannelGroup]:
    """Every prunable channel group of an Ultralytics pose network (see the module doc)."""
    groups: list[ChannelGroup] = []
    for name, m in net.named_modules():
        kind = type(m).__name__
        if kind == "Bottleneck" and _conv_block(m.cv1) and _conv_block(m.cv2) and m.cv1.conv.groups == 1:
            groups.append(ChannelGroup(f"{name}.cv1", m.cv1, [(m.cv2.conv, 1)]))
        elif kind == "SPPF" and _conv_block(m.cv1):
            repeat = m.cv2.conv.in_channels // m.cv1.conv.out_channels
            groups.append(ChannelGroup(f"{name}.cv1", m.cv1, [(m.cv2.conv, repeat)]))
    head_name, head = f"model.{len(net.model) - 1}", net.model[-1]
    for branch in BRANCHES:
        levels = getattr(head, branch, None)
        if levels is None:
            continue
        for level, seq in enumerate(levels):
            layers = _flatten(seq)
            extra = [getattr(head, f"{branch}_{suffix}", None) for suffix in ("kpts", "sigma")]
            tails = [e[level] for e in extra if e is not None]  # Pose26: cv4 ends in a Conv, then these read it
            if tails:
                layers = layers + [tails]
            for i, layer in enumerate(layers[:-1]):
                if not _conv_block(layer) or _is_depthwise(layer):
                    continue
                j, dws = i + 1, []
                while j < len(layers) and not isinstance(layers[j], list) and _is_depthwise(layers[j]):
                    dws.append(layers[j])
                    j += 1
                if j >= len(layers):
                    break
                nxt = layers[j]
                readers = [(t, 1) for t in nxt] if isinstance(nxt, list) else [(nxt.conv if _conv_block(nxt) else nxt, 1)]
                groups.append(ChannelGroup(f"{head_name}.{branch}.{level}.{i}", layer, readers, dws))
    return groups


def _scores(group: ChannelGroup, criterion: str) -> torch.Tensor:
    if criterion == "bn_scale":
        return group.producer.bn.weight.detach().abs()
    return group.producer.conv.weight.detach().flatten(1).norm(dim=1)


def _slice_bn(bn: nn.BatchNorm2d, keep: torch.Tensor) -> None:
    bn.weight = nn.Parameter(bn.weight.detach()[keep].clone())
    bn.bias = nn.Parameter(bn.bias.detach()[keep].clone())
    bn.running_mean = bn.running_mean[keep].clone()
    bn.running_var = bn.running_var[keep].clone()
    bn.num_features = int(keep.numel())


def _slice_out(conv: nn.Conv2d, keep: torch.Tensor) -> None:
    conv.weight = nn.Parameter(conv.weight.detach()[keep].clone())
    if conv.bias is not None:
        conv.bias = nn.Parameter(conv.bias.detach()[keep].clone())
    conv.out_channels = int(keep.numel())


def _slice_in(conv: nn.Conv2d, keep: torch.Tensor, size: int, repeat: int) -> None:
    index = torch.cat([keep + r * size for r in range(repeat)])
    conv.weight = nn.Parameter(conv.weight.detach()[:, index].clone())
    conv.in_channels = int(index.numel())


def prune_group_(group: ChannelGroup, keep: torch.Tensor) -> None:
    """Keep only channels `keep` (sorted indices) of the group, in every conv and BatchNorm it touches."""
    size = group.channels
    keep = keep.sort().values
    _slice_out(group.producer.conv, keep)
    _slice_bn(group.producer.bn, keep)
    for dw in group.depthwise:
        _slice_out(dw.conv, keep)
        dw.conv.in_channels = dw.conv.groups = int(keep.numel())
        _slice_bn(dw.bn, keep)
    for conv, repeat in group.consumers:
        _slice_in(conv, keep, size, repeat)


def conv_macs(net: nn.Module, imgsz: tuple[int, int]) -> int:
    """Multiply-accumulates of every convolution for one image at `imgsz` (eval-mode forward)."""
    total = [0]

    def count(conv: nn.Conv2d, _inputs: Any, output: torch.Tensor) -> None:
        k = conv.kernel_size[0] * conv.kernel_size[1]
        total[0] += int(output.numel() * conv.in_channels // conv.groups * k)

    handles = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, nn.Conv2d)]
    was_training = net.training
    try:
        with torch.no_grad():
            net.eval()(torch.zeros(1, 3, *imgsz))
    finally:
        for handle in handles:
            handle.remove()
        net.train(was_training)
    return total[0]


def _keep_count(channels: int, ratio: float, round_to: int) -> int:
    kept = channels * (1.0 - ratio)
    kept = max(round_to, int(math.ceil(kept / round_to) * round_to)) if round_to > 1 else max(1, int(math.ceil(kept)))
    return min(channels, kept)


@dataclass(frozen=True)
class ChannelPlan:
    """What to prune: a uniform ratio per group, or the ratio found for a MACs target."""

    ratio: float | None = None  # fraction of each group's channels removed
    macs: float | None = None  # fraction of the model's conv MACs kept (searched for a uniform ratio)
    criterion: str = "magnitude"
    round_to: int = 16  # keep channel counts multiples of this (SIMD-friendly; DeepSparse 1.8 crashes compiling
    #                     some YOLO26 graphs pruned to multiples of 8)
    exclude: tuple[str, ...] = ()  # group-name regexes left alone

    def __post_init__(self) -> None:
        if (self.ratio is None) == (self.macs is None):
            raise InvalidInputError("channel pruning needs exactly one target: ratio (fraction of each group's "
                                    "channels removed) or macs (fraction of the model's conv MACs kept)")
        if self.criterion not in CRITERIA:
            raise InvalidInputError(f"unknown channel-pruning criterion '{self.criterion}'; known: {', '.join(CRITERIA)}")


def select_groups(net: nn.Module, exclude: Iterable[str] = ()) -> list[ChannelGroup]:
    patterns = [re.compile(p) for p in exclude]
    return [g for g in find_groups(net) if not any(p.search(g.name) for p in patterns)]


def prune_channels_(net: nn.Module, plan: ChannelPlan, imgsz: tuple[int, int] = (640, 640)) -> dict[str, Any]:
    """Prune `net` in place by `plan`; returns the per-group table and MACs / parameters before and after."""
    before_macs, before_params = conv_macs(net, imgsz), sum(p.numel() for p in net.parameters())
    ratio = plan.ratio
    if plan.macs is not None:
        ratio = _ratio_for_macs(net, plan, imgsz, before_macs)
    table = []
    for group in select_groups(net, plan.exclude):
        channels = group.channels
        kept = _keep_count(channels, ratio, plan.round_to)
        keep = _scores(group, plan.criterion).argsort(descending=True)[:kept]
        if kept < channels:
            prune_group_(group, keep)
        table.append({"group": group.name, "channels": channels, "kept": kept})
    after_macs = conv_macs(net, imgsz)
    return {"ratio": ratio, "groups": table, "macs_before": before_macs, "macs_after": after_macs,
            "macs_kept": after_macs / before_macs, "params_before": int(before_params),
            "params_after": int(sum(p.numel() for p in net.parameters())), "criterion": plan.criterion,
            "imgsz": list(imgsz)}


def _ratio_for_macs(net: nn.Module, plan: ChannelPlan, imgsz: tuple[int, int], total: int) -> float:
    """The smallest uniform ratio whose pruned model keeps at most `plan.macs` of the conv MACs (bisection on a
    copy); a target below what the prunable groups can reach is an error that says how low it can go."""
    import copy

    def kept(ratio: float) -> float:
        trial = copy.deepcopy(net)
        for group in select_groups(trial, plan.exclude):
            k = _keep_count(group.channels, ratio, plan.round_to)
            if k < group.channels:
                prune_group_(group, _scores(group, plan.criterion).argsort(descending=True)[:k])
        return conv_macs(trial, imgsz) / total

    floor = kept(0.95)
    if plan.macs < floor:
        raise InvalidInputError(f"channel pruning cannot keep only {plan.macs:.0%} of the MACs: pruning every "
                                f"prunable group by 95 % still keeps {floor:.0%}; ask for macs >= {floor:.2f}")
    low, high = 0.0, 0.95
    for _ in range(12):
        mid = (low + high) / 2
        if kept(mid) > plan.macs:
            low = mid
        else:
            high = mid
    return high
