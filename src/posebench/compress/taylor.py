"""Taylor importance of output channels on the recovery loss (Molchanov et al., "Importance Estimation for
Neural Network Pruning", CVPR 2019, first order).

Removing channel j changes the loss by about -sum(p * dL/dp) over the channel's parameters p (its conv filter
row and its BatchNorm scale and shift). The gradients are of the model's own task loss (Ultralytics' pose loss,
as the trainer computes it) summed over labelled batches of the recovery set; the absolute product is stored on
each Ultralytics Conv block as `taylor_importance` (one value per output channel), which
`posebench.compress.channels` reads for `criterion: taylor`. Weights are not changed; BatchNorm statistics are
kept (the blocks run in eval mode).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from posebench.compress.channel_groups import TAYLOR_ATTRIBUTE, conv_blocks
from posebench.errors import InvalidInputError


def channel_importance(block: nn.Module) -> torch.Tensor:
    """|sum of p x dL/dp| per output channel of one Conv block (filter row + BatchNorm scale and shift), from the
    gradients accumulated in `.grad`; zeros where there is no gradient."""
    total = torch.zeros(block.conv.out_channels)
    for p, per_row in ((block.conv.weight, True), (block.bn.weight, False), (block.bn.bias, False)):
        if p.grad is None:
            continue
        product = (p.detach() * p.grad.detach())
        total += product.flatten(1).sum(1) if per_row else product
    return total.abs()


def loss_batches(data: Path, *, size: int, batch: int, limit: int) -> list[dict]:
    """Up to `limit` labelled batches (`size` x `size`) of a data YAML's train split to take the loss's gradients
    on."""
    from posebench.ultralytics_adapter import labelled_batches

    try:
        return labelled_batches(data, size=size, batch=batch, limit=limit)
    except InvalidInputError as exc:
        raise InvalidInputError(f"criterion: taylor {exc}") from None


def taylor_importance_(net: nn.Module, batches: list[dict],
                       on_progress: Callable[[int, int], None] | None = None) -> int:
    """Accumulate the task loss's gradients over `batches` and store each Conv block's channel importance as its
    `taylor_importance` attribute; returns the images used. The model's weights and statistics are unchanged."""
    from posebench.ultralytics_adapter import default_cfg

    if not batches:
        raise InvalidInputError("criterion: taylor got no labelled batch to take the loss's gradients on")
    if getattr(net, "args", None) is None or isinstance(net.args, dict):
        net.args = default_cfg(net.args if isinstance(net.args, dict) else None)  # the loss's gains
    criterion = getattr(net, "criterion", None)
    net.criterion = net.init_criterion()
    was_training = net.training
    net.train()
    for m in net.modules():  # keep the BatchNorm statistics: eval mode normalises with them, grads still flow
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
    requires = {p: p.requires_grad for p in net.parameters()}
    for p in net.parameters():
        p.requires_grad_(True)
        p.grad = None
    images = 0
    try:
        for n, batch in enumerate(batches):
            loss, _ = net.loss(batch)
            loss.sum().backward()
            images += int(batch["img"].shape[0])
            if on_progress:
                on_progress(n + 1, len(batches))
        for block in conv_blocks(net):
            setattr(block.conv, TAYLOR_ATTRIBUTE, channel_importance(block))
    finally:
        for p, flag in requires.items():
            p.grad = None
            p.requires_grad_(flag)
        net.criterion = criterion
        net.train(was_training)
    return images
