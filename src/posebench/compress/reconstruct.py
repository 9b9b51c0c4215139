"""Label-free recovery of a channel-pruned model by least squares: each convolution that lost input channels is
re-fitted so that, fed what the pruned network computes up to it, it reproduces what the dense network's same
convolution output on the same images.

This is the reconstruction step of channel pruning by feature-map reconstruction (He et al., "Channel Pruning
for Accelerating Very Deep Neural Networks", ICCV 2017; Luo et al., ThiNet, 2017): a convolution is linear in its
input patches, so the best weights for the channels that remain are one regression per layer, with an intercept
that the following BatchNorm absorbs. Convolutions are fitted in the order the network runs them, each on the
pruned network's real input (earlier fits included). The regression is pulled towards the weights the conv already
has, not towards zero: fitted hard on a few dozen frames of one scene, the convs learn that scene and lose the rest.
It needs images but no labels and costs one partial forward of both networks per fitted convolution.

Measured on yolo11n-pose pruned to 83 % of the conv MACs (sensitivity allocation), fitted on 32 street-video frames
from 0-149, fidelity (keypoint AP against the dense model) on frames 150-204 at 640: 0.710 as pruned, 0.761
fitted (pull 1.0, the default), 0.747 / 0.744 at pulls 3 / 10, 0.539 / 0.428 at 0.1 / 0.01; fitting on the dense
network's inputs instead of the pruned one's: 0.749. Four epochs of distillation (posebench.compress.distill) from
the plain prune reach 0.775 in 1.5x the time; distillation *from the fitted model* fell to 0.52 (0.46 with BatchNorm
re-estimated first) with that benchmark's recipe (BatchNorm in train mode, mosaic, lr 5e-4, 150 frames of one
scene). With the gentle recipe (BatchNorm frozen, no mosaic, lr 3e-4 -> 3e-5) on coco-pose-recovery it does not
collapse (benchmarks/results/reconstruction).

Where the fit's gain goes (yolo11n-pose at 75 % of the MACs, 200 coco-pose-recovery images, judged on coco-pose-val):
fitted uniformly, the mean per-conv error falls 1.18 -> 0.35 and the head's box and keypoint outputs move half as far
from the dense model's, yet pose mAP50-95 goes 0.426 -> 0.429: the class branch's final convs spend their least
squares on the logits of the background (relative error 6.5 before the fit on P3), and the class scores, which rank
every detection, end *further* from the dense model's (class term 0.0040 -> 0.0051). Weighting each head-branch
position by the dense model's person score there (`score_weights`, the default) fits where scores matter: class
term 0.0023, pose mAP50-95 **0.457** (+3.1 [+2.2, +4.1] over the one shot), 13 minutes on 2 cores, no labels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class KeptChannels:
    """What channel pruning kept of one convolution, in its original coordinates."""

    rows: torch.Tensor  # output channels kept
    cols: torch.Tensor  # input channels kept
    lost_inputs: bool  # some input channels were removed: the conv is re-fitted


class _Reached(Exception):
    """Raised by a hook to end a forward pass once the layer of interest has been seen."""


def _forward_order(net: nn.Module, image: torch.Tensor) -> list[nn.Conv2d]:
    order: list[nn.Conv2d] = []
    hooks = [m.register_forward_pre_hook(lambda mod, _inputs: order.append(mod)) for m in net.modules()
             if isinstance(m, nn.Conv2d)]
    try:
        net(image)
    finally:
        for hook in hooks:
            hook.remove()
    seen: set[int] = set()
    return [m for m in order if not (id(m) in seen or seen.add(id(m)))]


def _run_until(net: nn.Module, module: nn.Module, images: torch.Tensor, output: bool) -> torch.Tensor:
    """`module`'s input (or output) when `net` runs `images`; the forward stops there."""
    got: list[torch.Tensor] = []

    def before(_mod: nn.Module, inputs: tuple) -> None:
        got.append(inputs[0])
        raise _Reached

    def after(_mod: nn.Module, _inputs: tuple, out: torch.Tensor) -> None:
        got.append(out)
        raise _Reached

    hook = module.register_forward_hook(after) if output else module.register_forward_pre_hook(before)
    try:
        net(images)
    except _Reached:
        pass
    finally:
        hook.remove()
    if not got:
        raise RuntimeError(f"{type(module).__name__} did not run in the forward pass")
    return got[0]


Weigher = Callable[[str, torch.Tensor], "torch.Tensor | None"]  # (conv name, images) -> (B, H, W) weights or None


def score_weights(dense: nn.Module, floor: float = 0.02) -> Weigher:
    """Weights for the head branches' output positions: the dense model's highest class score at that anchor plus
    `floor` (where the teacher sees a person, as the distillation's box and keypoint terms weigh them); None
    (uniform) for every conv outside the head. Why: fitted uniformly, the class branch's convs spend their least
    squares on the logits of the background, which no score threshold ever sees."""
    head = dense.model[-1]
    prefix = f"model.{len(dense.model) - 1}."
    cached: dict[tuple, list[torch.Tensor]] = {}  # per batch of images (the fit's slices of one tensor)

    def weigh(name: str, images: torch.Tensor) -> torch.Tensor | None:
        parts = name.split(".")
        if not name.startswith(prefix) or len(parts) < 4 or not parts[3].isdigit():
            return None
        key = (images.data_ptr(), tuple(images.shape))
        if key not in cached:
            from posebench.compress.scan_damage import head_outputs

            scores = head_outputs(dense, images)["scores"].sigmoid().amax(1)  # (B, anchors)
            h, w = images.shape[2:]
            sizes = [(h // int(s), w // int(s)) for s in head.stride]
            levels = torch.split(scores, [a * b for a, b in sizes], dim=1)
            cached[key] = [lv.reshape(-1, *size) + floor for lv, size in zip(levels, sizes)]
        return cached[key][int(parts[3])]

    return weigh


@torch.no_grad()
def reconstruct_(pruned: nn.Module, dense: nn.Module, kept: dict[str, KeptChannels], images: torch.Tensor, *,
                 batch: int = 8, ridge: float = 1.0, positions: int = 20000, sequential: bool = True,
                 weigh: Weigher | None = None,
                 on_progress: Callable[[int, int], None] | None = None) -> list[dict[str, float]]:
    """Re-fit, in place and in forward order, every ungrouped conv of `pruned` named in `kept` that lost inputs, to
    reproduce `dense`'s conv of the same name (its kept output channels) on `images` (a float batch, letterboxed,
    0-1). `ridge`: weight of the pull towards the conv's current weights, relative to the mean input energy;
    `positions`: output positions sampled per batch; `sequential`: fit on what the pruned network feeds each conv
    (default) or on the dense network's inputs to it; `weigh`: per-position weights of a conv's fit (`score_weights`;
    None: uniform), the errors reported weighted the same way. Returns, per conv, the relative squared error of its output
    before and after the fit."""
    pruned.eval()
    dense.eval()
    names = {id(m): name for name, m in pruned.named_modules()}
    dense_modules = dict(dense.named_modules())
    from posebench.compress.channel_groups import batchnorm_after

    batchnorm = batchnorm_after(pruned)
    targets = [conv for conv in _forward_order(pruned, images[:1])
               if names.get(id(conv)) in kept and kept[names[id(conv)]].lost_inputs and conv.groups == 1]
    generator = torch.Generator().manual_seed(0)
    report = []
    for t, conv in enumerate(targets):
        name = names[id(conv)]
        reference, rows = dense_modules[name], kept[name].rows
        width = conv.weight[0].numel()
        gram = torch.zeros(width + 1, width + 1, dtype=torch.float64)
        cross = torch.zeros(width + 1, len(rows), dtype=torch.float64)
        target_energy, before_error, y_energy = 0.0, 0.0, 0.0
        for start in range(0, len(images), batch):
            chunk = images[start:start + batch]
            if sequential:  # what the pruned network (earlier fits included) feeds this conv
                x = _run_until(pruned, conv, chunk, output=False)
            else:  # what the dense network fed it, on the channels that remain
                x = _run_until(dense, reference, chunk, output=False)[:, kept[name].cols]
            y = _run_until(dense, reference, chunk, output=True)[:, rows]
            before = conv(x)
            patches = F.unfold(x, conv.kernel_size, dilation=conv.dilation, padding=conv.padding, stride=conv.stride)
            patches = patches.transpose(1, 2).reshape(-1, width)
            y, before = (v.flatten(2).transpose(1, 2).reshape(-1, len(rows)) for v in (y, before))
            found = weigh(name, chunk) if weigh is not None else None
            weight = torch.ones(patches.shape[0]) if found is None else found.reshape(-1)
            if patches.shape[0] > positions:
                pick = torch.randperm(patches.shape[0], generator=generator)[:positions]
                patches, y, before, weight = patches[pick], y[pick], before[pick], weight[pick]
            centred = y - (weight[:, None] * y).sum(0) / weight.sum()
            target_energy += float((weight[:, None] * centred.pow(2)).sum())
            before_error += float((weight[:, None] * (before - y).pow(2)).sum())
            y_energy += float((weight[:, None] * y).double().mul(y.double()).sum())
            patches = torch.cat([patches, torch.ones(patches.shape[0], 1)], 1)
            weighted = patches * weight[:, None]
            gram += (weighted.T @ patches).double()  # products in float32 (fast), sums over batches in float64
            cross += (weighted.T @ y).double()
        # ridge towards the weights the conv already has (the dense ones, minus the removed inputs), not towards
        # zero: where the images say little, the fit keeps what training learned
        prior = torch.cat([conv.weight.detach().reshape(len(rows), width).T,
                           (conv.bias.detach() if conv.bias is not None else torch.zeros(len(rows)))[None]]).double()
        penalty = ridge * gram.diagonal()[:-1].mean() * torch.eye(width + 1, dtype=torch.float64)
        penalty[-1, -1] = 0.0  # the intercept is free
        solution = torch.linalg.solve(gram + penalty, cross + penalty @ prior)  # (width + 1, out): weights, intercept
        # the fit's error on the same positions, from the normal equations: |y|^2 - 2 w'X'y + w'X'Xw
        after_error = y_energy - 2 * float((solution * cross).sum()) + float((solution * (gram @ solution)).sum())
        weight, intercept = solution[:-1].T.float().reshape(conv.weight.shape), solution[-1].float()
        conv.weight.data = weight
        norm = batchnorm.get(id(conv))
        if norm is not None:  # conv -> BatchNorm: the intercept moves into the BatchNorm's running mean
            if conv.bias is not None:
                conv.bias.data.zero_()
            norm.running_mean -= intercept
        elif conv.bias is not None:
            conv.bias.data = intercept
        else:
            conv.bias = nn.Parameter(intercept)
        energy = max(target_energy, 1e-12)
        report.append({"conv": name, "error_before": before_error / energy, "error_after": max(after_error, 0.0) / energy})
        if on_progress:
            on_progress(t + 1, len(targets))
    return report
