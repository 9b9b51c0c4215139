"""Unstructured magnitude pruning of a torch model, driven by a recipe's pruning modifiers.

Masks zero exactly round(sparsity x size) weights per tensor ("local") or per group ("global"),
smallest magnitudes first (ties broken by position), so the sparsity a recipe asks for is the
sparsity the checkpoint gets. Only weights with 2+ dimensions (conv, linear) are pruned.
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
        if modifier.scope == "local":
            for t in members:
                w = params[t.name].detach()
                masks[t.name] = _k_smallest_mask(w.abs(), round(sparsity * w.numel()))
        else:  # one threshold over the whole group
            flat = torch.cat([params[t.name].detach().abs().flatten() for t in members])
            keep = _k_smallest_mask(flat, round(sparsity * flat.numel()))
            offset = 0
            for t in members:
                n = params[t.name].numel()
                masks[t.name] = keep[offset:offset + n].view_as(params[t.name])
                offset += n
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
