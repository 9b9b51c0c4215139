"""Magnitude pruning of a torch model, driven by a recipe's pruning modifiers.

Masks zero exactly round(sparsity x size) weights per tensor ("local") or per group ("global"),
smallest magnitudes first (ties broken by position), so the sparsity a recipe asks for is the
sparsity the checkpoint gets. Only weights with 2+ dimensions (conv, linear) are pruned.
With `mask: block4` the unit is a block of 4 consecutive input channels at one (output channel, kernel
position), scored by its mean magnitude (SparseML's `block4`); a tensor whose input channels are not a
multiple of 4 ends each row in a shorter block, and round(sparsity x blocks) blocks are zeroed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from posebench.compress.recipe import PruningModifier, Recipe, RecipeError


@dataclass(frozen=True)
class Target:
    """One prunable tensor, the modifier and group that own it."""

    name: str
    modifier: int  # index into the recipe's pruning modifiers
    group: int  # index into that modifier's groups
    final: float  # final sparsity of its group


def prunable_names(model: torch.nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.dim() >= 2]


def resolve_targets(recipe: Recipe, model: torch.nn.Module) -> list[Target]:
    """Match every group against the model's parameters; a group matching nothing is an error."""
    names = prunable_names(model)
    owner: dict[str, Target] = {}
    for mi, modifier in enumerate(recipe.pruning()):
        for gi, group in enumerate(modifier.groups):
            matched = group.select(names, modifier.exclude)
            if not matched:
                raise RecipeError(
                    f"modifiers[{mi}].groups[{gi}]: targets {list(group.targets)} (minus exclusions) match no "
                    f"conv/linear weight of this model; its parameters look like {names[:3]} ... {names[-2:]}")
            for name in matched:
                if name in owner:
                    raise RecipeError(f"parameter {name} is targeted twice (modifiers[{owner[name].modifier}]."
                                      f"groups[{owner[name].group}] and modifiers[{mi}].groups[{gi}])")
                owner[name] = Target(name, mi, gi, group.sparsity)
    return list(owner.values())


def _k_smallest_mask(magnitudes: torch.Tensor, k: int) -> torch.Tensor:
    """1 everywhere except the k smallest entries (exactly k zeros)."""
    mask = torch.ones_like(magnitudes, dtype=torch.bool).flatten()
    if k > 0:
        idx = torch.argsort(magnitudes.flatten(), stable=True)[:k]
        mask[idx] = False
    return mask.view_as(magnitudes)


def _block4_scores(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean |w| of every block of 4 consecutive input channels (dim 1), and the block index of every weight."""
    moved = w.abs().movedim(1, -1)  # (out, kh, kw, in)
    cin = moved.shape[-1]
    block_of_channel = torch.arange(cin, device=w.device) // 4
    blocks = (cin + 3) // 4
    sums = moved.new_zeros(*moved.shape[:-1], blocks).index_add_(-1, block_of_channel, moved)
    sizes = torch.bincount(block_of_channel, minlength=blocks).to(moved.dtype)
    rows = torch.arange(moved[..., 0].numel(), device=w.device).view(moved.shape[:-1])
    index = (rows.unsqueeze(-1) * blocks + block_of_channel).movedim(-1, 1)  # block id per weight, shaped like w
    return (sums / sizes).flatten(), index


def _masks_for(weights: list[torch.Tensor], sparsity: float, unit: str) -> list[torch.Tensor]:
    """Masks over `weights` sharing one magnitude ranking (one tensor: local scope; several: global)."""
    if unit == "unstructured":
        flat = torch.cat([w.abs().flatten() for w in weights])
        keep = _k_smallest_mask(flat, round(sparsity * flat.numel()))
        parts = keep.split([w.numel() for w in weights])
        return [part.view_as(w) for part, w in zip(parts, weights)]
    scored = [_block4_scores(w) for w in weights]
    scores = torch.cat([s for s, _ in scored])
    keep = _k_smallest_mask(scores, round(sparsity * scores.numel())).split([s.numel() for s, _ in scored])
    return [k[index] for k, (_, index) in zip(keep, scored)]


def compute_masks(model: torch.nn.Module, targets: list[Target], recipe: Recipe,
                  epoch: float | None = None) -> dict[str, torch.Tensor]:
    """Masks for every target at `epoch` of the schedule (None: final sparsity)."""
    params = dict(model.named_parameters())
    modifiers = recipe.pruning()
    masks: dict[str, torch.Tensor] = {}
    by_group: dict[tuple[int, int], list[Target]] = {}
    for t in targets:
        by_group.setdefault((t.modifier, t.group), []).append(t)
    for (mi, _), members in by_group.items():
        modifier: PruningModifier = modifiers[mi]
        sparsity = members[0].final if epoch is None else modifier.sparsity_at(members[0].final, epoch)
        weights = [params[t.name].detach() for t in members]
        ranked = [[w] for w in weights] if modifier.scope == "local" else [weights]  # global: one ranking
        found = [m for ws in ranked for m in _masks_for(ws, sparsity, modifier.mask)]
        masks.update({t.name: m for t, m in zip(members, found)})
    return masks


@torch.no_grad()
def apply_masks_(model: torch.nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero the masked weights of `model` in place (names as in `model.named_parameters()`)."""
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        p = params[name]
        p.mul_(mask.to(device=p.device, dtype=p.dtype))


def prune_one_shot_(model: torch.nn.Module, recipe: Recipe) -> dict[str, torch.Tensor]:
    """Apply every pruning modifier at its final sparsity; returns the masks."""
    masks = compute_masks(model, resolve_targets(recipe, model), recipe)
    apply_masks_(model, masks)
    return masks


def sparsity_table(model: torch.nn.Module, names: list[str] | None = None) -> list[dict]:
    """Per-tensor zeros / size / sparsity for the named (default: all prunable) weights."""
    params = dict(model.named_parameters())
    rows = []
    for name in names or prunable_names(model):
        p = params[name].detach()
        zeros = int((p == 0).sum())
        rows.append({"name": name, "shape": list(p.shape), "size": p.numel(), "zeros": zeros,
                     "sparsity": zeros / p.numel()})
    return rows


def overall_sparsity(rows: list[dict]) -> float:
    size = sum(r["size"] for r in rows)
    return sum(r["zeros"] for r in rows) / size if size else 0.0
