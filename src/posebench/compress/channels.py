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

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from posebench.compress.channel_groups import (
    TAYLOR_ATTRIBUTE,
    ChannelGroup,
    batchnorm_after,
    conv_blocks,
    conv_macs,
    select_groups,
)
from posebench.compress.channel_shifts import compensate_, expected_shifts, measured_shifts
from posebench.compress.reconstruct import KeptChannels
from posebench.errors import InvalidInputError

CRITERIA = ("magnitude", "bn_scale", "taylor")
ALLOCATIONS = ("uniform", "sensitivity")
LEVELS = (0.25, 0.5, 0.75)  # fractions of a group's channels the sensitivity scan tries removing


def _scores(group: ChannelGroup, criterion: str) -> torch.Tensor:
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


def _fix_attributes(net: nn.Module) -> None:
    """Blocks that record a channel count use it in forward (C2f.forward_split); both halves must match."""
    for name, m in net.named_modules():
        if type(m).__name__ in ("C2f", "C3k2"):
            if m.cv1.conv.out_channels % 2:
                raise RuntimeError(f"{name}: the two halves of cv1 were pruned unevenly: please report this")
            m.c = m.cv1.conv.out_channels // 2


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
    compensate: bool = False  # move removed channels' mean activation into their readers (`expected_shifts`;
    #                           measured on yolo11n-pose, coco-pose-val: a loss, 0.490 -> 0.486 at 80 % of the MACs,
    #                           0.426 -> 0.377 at 75 %; benchmarks/results/bn-settle)
    allocation: str = "uniform"  # uniform: one ratio for every group; sensitivity: per group, from a scan (macs only)
    reconstruct: bool = False  # re-fit the convs that lost inputs to the dense model's outputs (least squares on
    #                            images, no labels: posebench.compress.reconstruct)

    def __post_init__(self) -> None:
        if (self.ratio is None) == (self.macs is None):
            raise InvalidInputError("channel pruning needs exactly one target: ratio (fraction of each group's "
                                    "channels removed) or macs (fraction of the model's conv MACs kept)")
        if self.allocation not in ALLOCATIONS:
            raise InvalidInputError(f"unknown channel allocation '{self.allocation}'; known: {', '.join(ALLOCATIONS)}")
        if self.allocation == "sensitivity" and self.macs is None:
            raise InvalidInputError("allocation: sensitivity spreads a MACs target over the groups: give macs, not ratio")
        if self.compensate and self.reconstruct:
            raise InvalidInputError("compensate and reconstruct both correct the readers of removed channels: "
                                    "reconstruct fits what compensate estimates, choose one")
        if self.criterion not in CRITERIA:
            raise InvalidInputError(f"unknown channel-pruning criterion '{self.criterion}'; known: {', '.join(CRITERIA)}")


def prune_channels_(net: nn.Module, plan: ChannelPlan, imgsz: tuple[int, int] = (640, 640),
                    images: torch.Tensor | None = None, fit_images: torch.Tensor | None = None,
                    on_progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Prune `net` in place by `plan`; returns the per-group table and MACs / parameters before and after.
    `images` (a float batch, letterboxed, 0-1): what the sensitivity allocation scores the damage on;
    `fit_images` (same form): what `plan.reconstruct` fits the pruned convs on (`on_progress(done, total)`)."""
    if plan.reconstruct and fit_images is None:
        raise InvalidInputError("reconstruct: true fits the pruned convs to the dense model's outputs on images: "
                                "give --pseudo-labels, --bn-recalibration, --calib or --data")
    dense = copy.deepcopy(net).eval() if plan.reconstruct else None
    before_macs, before_params = conv_macs(net, imgsz), sum(p.numel() for p in net.parameters())
    ratio = plan.ratio
    scan = None
    if plan.allocation == "sensitivity":
        if images is None:
            raise InvalidInputError("allocation: sensitivity needs images to measure each group's damage on "
                                    "(compress takes them from --pseudo-labels, --bn-recalibration or --calib)")
        removed, scan = sensitivity_removals(net, plan, imgsz, images, before_macs)
        groups = select_groups(net, plan.exclude)
    else:
        if plan.macs is not None:
            ratio = _ratio_for_macs(net, plan, imgsz, before_macs)
        groups = select_groups(net, plan.exclude)
        removed = _removals(groups, ratio, plan)
    table = [{"group": g.name, "channels": g.size, "kept": g.size - int(removed[g.name].numel())} for g in groups]
    kept = apply_removals_(groups, removed, batchnorm_after(net) if plan.compensate else None)
    _fix_attributes(net)
    fitted = None
    if dense is not None:
        from posebench.compress.reconstruct import reconstruct_

        names = {id(m): name for name, m in net.named_modules()}
        start = time.perf_counter()
        errors = reconstruct_(net, dense, {names[key]: value for key, value in kept.items()}, fit_images,
                              on_progress=on_progress)
        fitted = {"images": int(fit_images.shape[0]), "convs": len(errors), "seconds": time.perf_counter() - start,
                  "mean_error_before": float(sum(e["error_before"] for e in errors) / max(len(errors), 1)),
                  "mean_error_after": float(sum(e["error_after"] for e in errors) / max(len(errors), 1)),
                  "per_conv": errors}
    for block in conv_blocks(net):  # importances described the channels before pruning; checkpoints must not carry them
        if hasattr(block.conv, TAYLOR_ATTRIBUTE):
            delattr(block.conv, TAYLOR_ATTRIBUTE)
    after_macs = conv_macs(net, imgsz)
    return {"ratio": ratio, "groups": table, "macs_before": before_macs, "macs_after": after_macs,
            "macs_kept": after_macs / before_macs, "params_before": int(before_params),
            "params_after": int(sum(p.numel() for p in net.parameters())), "criterion": plan.criterion,
            "allocation": plan.allocation, "imgsz": list(imgsz), **({"sensitivity": scan} if scan else {}),
            **({"reconstruction": fitted} if fitted else {})}


def _removals(groups: list[ChannelGroup], ratio: float, plan: ChannelPlan) -> dict[str, torch.Tensor]:
    """Per group, the lowest-ranked channels beyond the count kept at `ratio`."""
    removed = {}
    for group in groups:
        kept = _keep_count(group.size, ratio, plan.round_to)
        removed[group.name] = _scores(group, plan.criterion).argsort(descending=True)[kept:].sort().values
    return removed


def _ratio_for_macs(net: nn.Module, plan: ChannelPlan, imgsz: tuple[int, int], total: int) -> float:
    """The smallest uniform ratio whose pruned model keeps at most `plan.macs` of the conv MACs (bisection on a
    copy); a target below what the prunable groups can reach is an error that says how low it can go."""
    def kept(ratio: float) -> float:
        trial = copy.deepcopy(net)
        groups = select_groups(trial, plan.exclude)
        apply_removals_(groups, _removals(groups, ratio, plan))
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


def _units(groups: list[ChannelGroup]) -> list[list[ChannelGroup]]:
    """Groups that must keep as many channels as each other (tied C2f halves) form one unit."""
    by_name = {g.name: g for g in groups}
    units, seen = [], set()
    for g in groups:
        if g.name in seen:
            continue
        unit = [g] + [o for o in groups if o.tied == g.name and o.name not in seen] + \
            ([by_name[g.tied]] if g.tied in by_name and g.tied not in seen else [])
        seen.update(u.name for u in unit)
        units.append(unit)
    return units


def _unit_removals(unit: list[ChannelGroup], keep: int, criterion: str) -> dict[str, torch.Tensor]:
    return {g.name: _scores(g, criterion).argsort(descending=True)[keep:].sort().values for g in unit}


def _damage(net: nn.Module, dense_out: dict[str, Any], images: torch.Tensor) -> float:
    """How far `net`'s raw head outputs moved from the dense model's (the distillation output terms, which are
    zero-gradient at equality; their floor is subtracted by the caller)."""
    from posebench.compress.distill import output_terms

    head = net.model[-1]
    with torch.no_grad():
        out = net.eval()(images)[1]
    out = out["one2many"] if isinstance(out, dict) and "one2many" in out else out
    terms = output_terms(out, dense_out, reg_max=int(getattr(head, "reg_max", 16)), ndim=int(head.kpt_shape[1]))
    return float(sum(terms.values()))


def _remove_(net: nn.Module, groups: list[ChannelGroup], removed: dict[str, torch.Tensor], images: torch.Tensor,
              correct: bool) -> None:
    """Remove channels from `net` (a copy), moving the removed channels' measured mean contribution on `images`
    into their readers when `correct`."""
    if correct:
        apply_removals_(groups, removed, batchnorm_after(net), measured_shifts(net, groups, removed, images))
    else:
        apply_removals_(groups, removed)
    _fix_attributes(net)


def sensitivity_removals(net: nn.Module, plan: ChannelPlan, imgsz: tuple[int, int], images: torch.Tensor,
                         total: int, *, correct: bool = False) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Spread a MACs target over the groups by measured damage: each unit (a group, or tied C2f halves) is pruned
    alone at 25 / 50 / 75 % on a copy and scored by how far the head outputs move on `images`; then the cheapest
    steps (damage per MAC saved, each unit's levels in order) are taken until the target is met. Returns the
    removals and the scan (per unit and level: MACs saved, damage). `correct`: each trial moves the removed channels'
    measured mean contribution into their readers (`measured_shifts` on `images`) before it is scored, so the
    allocation chooses under the correction that will be applied."""
    groups = select_groups(net, plan.exclude)
    units = _units(groups)
    with torch.no_grad():
        dense_out = copy.deepcopy(net).eval()(images)[1]
    dense_out = dense_out["one2many"] if isinstance(dense_out, dict) and "one2many" in dense_out else dense_out
    floor = _damage(copy.deepcopy(net), dense_out, images)
    scan: list[dict[str, Any]] = []
    steps: dict[int, list[tuple[int, float, float]]] = {}  # unit -> [(keep, macs saved, damage)] by level
    for u, unit in enumerate(units):
        size = unit[0].size
        previous_keep = size
        for level in LEVELS:
            keep = _keep_count(size, level, plan.round_to)
            if keep >= previous_keep:
                continue
            previous_keep = keep
            trial = copy.deepcopy(net)
            trial_groups = {g.name: g for g in select_groups(trial, plan.exclude)}
            _remove_(trial, [trial_groups[g.name] for g in unit], _unit_removals(unit, keep, plan.criterion), images,
                     correct)
            saved = 1.0 - conv_macs(trial, imgsz) / total
            damage = max(0.0, _damage(trial, dense_out, images) - floor)
            steps.setdefault(u, []).append((keep, saved, damage))
            scan.append({"groups": [g.name for g in unit], "channels": size, "kept": keep, "macs_saved": saved,
                         "damage": damage})
    chosen: dict[int, int] = {}  # unit -> index of the level taken
    estimated = 0.0  # MACs saved, as the sum of each step's saving alone (a conv shared by two units saves less)
    target = need = 1.0 - float(plan.macs)
    while True:
        while estimated < target:
            best, best_cost = None, math.inf
            for u, levels in steps.items():
                nxt = chosen.get(u, -1) + 1
                if nxt >= len(levels):
                    continue
                prev_saved, prev_damage = (levels[nxt - 1][1], levels[nxt - 1][2]) if nxt else (0.0, 0.0)
                cost = max(levels[nxt][2] - prev_damage, 0.0) / max(levels[nxt][1] - prev_saved, 1e-12)
                if cost < best_cost:
                    best, best_cost = u, cost
            if best is None:
                raise InvalidInputError(f"channel pruning cannot keep only {plan.macs:.0%} of the MACs with the "
                                        f"groups this model has (at most {LEVELS[-1]:.0%} of each): ask for a "
                                        "higher macs")
            level = chosen.get(best, -1) + 1
            estimated += steps[best][level][1] - (steps[best][level - 1][1] if level else 0.0)
            chosen[best] = level
        removed = {g.name: torch.zeros(0, dtype=torch.long) for g in groups}
        for u, level in chosen.items():
            removed.update(_unit_removals(units[u], steps[u][level][0], plan.criterion))
        trial = copy.deepcopy(net)
        trial_groups = select_groups(trial, plan.exclude)
        _remove_(trial, trial_groups, removed, images, False)  # MACs do not depend on the correction
        actual = 1.0 - conv_macs(trial, imgsz) / total
        if actual >= need - 1e-9:
            break
        # overlapping savings: ask the estimate for the shortfall too (at least one more step)
        target = max(target + need - actual, estimated + 1e-9)
    return removed, scan
