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
same forward, smaller tensors. By default everything between blocks (the channels a block hands to the next) is
untouched; `between: true` adds those too (`channel_groups.between_groups`): each layer's output is followed
through Upsample and Concat (at its column offset) to every conv that reads it, and a group is formed only when
its producer and every reader are of a make posebench knows (else that output stays whole).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from posebench.compress.channel_allocation import sensitivity_removals
from posebench.compress.channel_groups import (
    TAYLOR_ATTRIBUTE,
    ChannelGroup,
    batchnorm_after,
    conv_blocks,
    conv_macs,
    select_groups,
)
from posebench.compress.channel_plan import ChannelPlan
from posebench.compress.channel_surgery import apply_removals_, channel_scores, fix_attributes, keep_count
from posebench.compress.conv_latency import LatencyTable
from posebench.errors import InvalidInputError


def prune_channels_(net: nn.Module, plan: ChannelPlan, imgsz: tuple[int, int] = (640, 640),
                    images: torch.Tensor | None = None, fit_images: torch.Tensor | None = None,
                    on_progress: Callable[[int, int], None] | None = None,
                    latency_table: LatencyTable | None = None, labelled: list[Any] | None = None) -> dict[str, Any]:
    """Prune `net` in place by `plan`; returns the per-group table and MACs / parameters before and after (and the
    estimated conv time, when a latency table prices it). `images` (a float batch, letterboxed, 0-1): what the
    sensitivity allocation scores the damage on; `fit_images` (same form): what `plan.reconstruct` fits the pruned
    convs on (`on_progress(done, total)`); `latency_table`: what a latency target is priced by (default: this
    machine's OpenVINO table, measured on first use and cached); `labelled` (`evaluate.data.Sample`s): what
    `damage: ap` validates each scan step on."""
    if plan.reconstruct and fit_images is None:
        raise InvalidInputError("reconstruct: true fits the pruned convs to the dense model's outputs on images: "
                                "give --pseudo-labels, --bn-recalibration, --calib or --data")
    if plan.latency is not None and latency_table is None:
        from posebench.compress.conv_latency import openvino_table

        latency_table = openvino_table()
    dense = copy.deepcopy(net).eval() if plan.reconstruct else None
    before_macs, before_params = conv_macs(net, imgsz), sum(p.numel() for p in net.parameters())

    def estimated_ms(model: nn.Module) -> float:
        return latency_table.network_ms(model, imgsz, plan.float_convs)

    before_ms = estimated_ms(net) if latency_table is not None else None
    ratio = plan.ratio
    scan = None
    if plan.allocation == "sensitivity":
        if images is None:
            raise InvalidInputError("allocation: sensitivity needs images to measure each group's damage on "
                                    "(compress takes them from --pseudo-labels, --bn-recalibration or --calib)")
        by_latency = plan.latency is not None
        removed, scan = sensitivity_removals(net, plan, images,
                                             estimated_ms if by_latency else (lambda m: conv_macs(m, imgsz)),
                                             kept=plan.latency if by_latency else plan.macs,
                                             meter=_ap_meter(net, plan, labelled) if plan.damage == "ap" else None)
        groups = select_groups(net, plan.exclude, plan.between)
    else:
        if plan.macs is not None:
            ratio = _ratio_for_macs(net, plan, imgsz, before_macs)
        groups = select_groups(net, plan.exclude, plan.between)
        removed = _removals(groups, ratio, plan)
    table = [{"group": g.name, "channels": g.size, "kept": g.size - int(removed[g.name].numel())} for g in groups]
    kept = apply_removals_(groups, removed, batchnorm_after(net) if plan.compensate else None)
    fix_attributes(net)
    fitted = None
    if dense is not None:
        from posebench.compress.reconstruct import reconstruct_, score_weights

        names = {id(m): name for name, m in net.named_modules()}
        start = time.perf_counter()
        errors = reconstruct_(net, dense, {names[key]: value for key, value in kept.items()}, fit_images,
                              weigh=score_weights(dense) if plan.reconstruct_weighting == "scores" else None,
                              on_progress=on_progress)
        fitted = {"images": int(fit_images.shape[0]), "convs": len(errors), "seconds": time.perf_counter() - start,
                  "mean_error_before": float(sum(e["error_before"] for e in errors) / max(len(errors), 1)),
                  "mean_error_after": float(sum(e["error_after"] for e in errors) / max(len(errors), 1)),
                  "per_conv": errors}
    for block in conv_blocks(net):  # importances described the channels before pruning; checkpoints must not carry them
        if hasattr(block.conv, TAYLOR_ATTRIBUTE):
            delattr(block.conv, TAYLOR_ATTRIBUTE)
    after_macs = conv_macs(net, imgsz)
    latency = {}
    if latency_table is not None:
        after_ms = estimated_ms(net)
        latency = {"latency_estimate": {"ms_before": before_ms, "ms_after": after_ms, "kept": after_ms / before_ms,
                                        "table": latency_table.identity, "float_convs": list(plan.float_convs)}}
        latency_table.save()
    return {"ratio": ratio, "groups": table, "macs_before": before_macs, "macs_after": after_macs,
            "macs_kept": after_macs / before_macs, "params_before": int(before_params),
            "params_after": int(sum(p.numel() for p in net.parameters())), "criterion": plan.criterion,
            "allocation": plan.allocation, "imgsz": list(imgsz), **latency, **({"sensitivity": scan} if scan else {}),
            **({"reconstruction": fitted} if fitted else {})}


def _ap_meter(net: nn.Module, plan: ChannelPlan, labelled: list[Any] | None) -> Callable[[nn.Module], float]:
    """`damage: ap`: points of pose mAP50-95 a scan step loses on the labelled samples, at 640."""
    if not labelled:
        raise InvalidInputError("damage: ap validates each scan step on labelled images: give --data DATA.yaml "
                                "(the recovery data, never the set you judge on)")
    from posebench.compress.scan_damage import APDamage

    return APDamage(net, labelled, tuple(net.model[-1].kpt_shape))


def _removals(groups: list[ChannelGroup], ratio: float, plan: ChannelPlan) -> dict[str, torch.Tensor]:
    """Per group, the lowest-ranked channels beyond the count kept at `ratio`."""
    removed = {}
    for group in groups:
        kept = keep_count(group.size, ratio, plan.round_to)
        removed[group.name] = channel_scores(group, plan.criterion).argsort(descending=True)[kept:].sort().values
    return removed


def _ratio_for_macs(net: nn.Module, plan: ChannelPlan, imgsz: tuple[int, int], total: int) -> float:
    """The smallest uniform ratio whose pruned model keeps at most `plan.macs` of the conv MACs (bisection on a
    copy); a target below what the prunable groups can reach is an error that says how low it can go."""
    def kept(ratio: float) -> float:
        trial = copy.deepcopy(net)
        groups = select_groups(trial, plan.exclude, plan.between)
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
