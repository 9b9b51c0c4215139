"""Where channel pruning cuts: a sensitivity scan prices each unit's levels by measured damage and by what they
save, then the cheapest steps are taken until the target is met. What a step saves is a cost function of the
network: conv MACs, or the conv time a `posebench.compress.conv_latency.LatencyTable` estimates on the deployment
(issue 34: a step's cost is the latency it saves on the runtime and CPU you target, not its MACs)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from posebench.compress.channel_groups import ChannelGroup, batchnorm_after, select_groups
from posebench.compress.channel_shifts import measured_shifts
from posebench.compress.channel_surgery import apply_removals_, channel_scores, fix_attributes, keep_count
from posebench.errors import InvalidInputError

LEVELS = (0.25, 0.5, 0.75)  # fractions of a group's channels the sensitivity scan tries removing


@dataclass(frozen=True)
class Step:
    """One level of one unit, taken alone on a copy of the network: channels kept, the share of the network's cost
    it saves, and the damage it does."""

    keep: int
    saved: float
    damage: float


def cheapest_step(steps: dict[int, list[Step]], chosen: dict[int, int]) -> tuple[int, int] | None:
    """(unit, level) of the next step that does the least damage per share of the cost saved, both counted from the
    level the unit is at (`chosen`: unit -> index of the level taken). A unit's next level is its next one that saves
    anything (a latency table can price a deeper cut no faster: that level is passed over, never taken for free);
    None when no unit has a level left that saves something."""
    best, best_price = None, math.inf
    for unit, levels in steps.items():
        at = chosen.get(unit, -1)
        before = levels[at] if at >= 0 else Step(0, 0.0, 0.0)
        nxt = next((j for j in range(at + 1, len(levels)) if levels[j].saved > before.saved), None)
        if nxt is None:
            continue
        price = max(levels[nxt].damage - before.damage, 0.0) / (levels[nxt].saved - before.saved)
        if price < best_price:
            best, best_price = (unit, nxt), price
    return best


def units_of(groups: list[ChannelGroup]) -> list[list[ChannelGroup]]:
    """Groups that must keep as many channels as each other (tied C2f halves) form one unit."""
    by_name = {g.name: g for g in groups}
    units, seen = [], set()
    for g in groups:
        if g.name in seen:
            continue
        unit = [g] + [o for o in groups if o.tied == g.name and o.name not in seen]
        if g.tied in by_name and g.tied not in seen and all(u.name != g.tied for u in unit):
            unit.append(by_name[g.tied])  # (C2f's halves name each other: each once)
        seen.update(u.name for u in unit)
        units.append(unit)
    return units


def unit_removals(unit: list[ChannelGroup], keep: int, criterion: str) -> dict[str, torch.Tensor]:
    """Per group of `unit`, the lowest-ranked channels beyond `keep`."""
    return {g.name: channel_scores(g, criterion).argsort(descending=True)[keep:].sort().values for g in unit}


def remove_(net: nn.Module, groups: list[ChannelGroup], removed: dict[str, torch.Tensor], images: torch.Tensor,
            correct: bool) -> None:
    """Remove channels from `net` (a copy), moving the removed channels' measured mean contribution on `images`
    into their readers when `correct`."""
    if correct:
        apply_removals_(groups, removed, batchnorm_after(net), measured_shifts(net, groups, removed, images))
    else:
        apply_removals_(groups, removed)
    fix_attributes(net)


def sensitivity_removals(net: nn.Module, plan: Any, images: torch.Tensor, cost: Callable[[nn.Module], float], *,
                         kept: float, correct: bool = False, meter: Callable[[nn.Module], float] | None = None,
                         ) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Spread a target over the groups by measured damage: each unit (a group, or tied C2f halves) is pruned alone
    at 25 / 50 / 75 % on a copy and scored by how far the head outputs move on `images` and by the share of
    `cost(net)` (conv MACs, or estimated conv time) it saves; then the cheapest steps (`cheapest_step`) are taken
    until the pruned network's cost is at most `kept` of the dense one's. `plan`: a `ChannelPlan` (exclude,
    round_to, criterion). Returns the removals and the scan (per unit and level: share saved, damage). `correct`:
    each trial moves the removed channels' measured mean contribution into their readers (`measured_shifts` on
    `images`) before it is scored, so the allocation chooses under the correction that will be applied. `meter`: a
    step's damage (default: `scan_damage.OutputDamage` on `images`; `APDamage` scores pose mAP on labels)."""
    from posebench.compress.scan_damage import OutputDamage

    groups = select_groups(net, plan.exclude, plan.between)
    units = units_of(groups)
    total = cost(net)
    meter = meter or OutputDamage(net, images)
    scan: list[dict[str, Any]] = []
    steps: dict[int, list[Step]] = {}
    for u, unit in enumerate(units):
        size, previous_keep = unit[0].size, unit[0].size
        for level in LEVELS:
            keep = keep_count(size, level, plan.round_to)
            if keep >= previous_keep:
                continue
            previous_keep = keep
            trial = copy.deepcopy(net)
            trial_groups = {g.name: g for g in select_groups(trial, plan.exclude, plan.between)}
            remove_(trial, [trial_groups[g.name] for g in unit], unit_removals(unit, keep, plan.criterion), images,
                    correct)
            step = Step(keep, 1.0 - cost(trial) / total, meter(trial))
            steps.setdefault(u, []).append(step)
            scan.append({"groups": [g.name for g in unit], "channels": size, "kept": keep, "saved": step.saved,
                         "damage": step.damage})
    return _take_steps(net, plan, units, steps, cost, total, kept), scan


def _take_steps(net: nn.Module, plan: Any, units: list[list[ChannelGroup]], steps: dict[int, list[Step]],
                cost: Callable[[nn.Module], float], total: float, kept: float) -> dict[str, torch.Tensor]:
    """The cheapest steps until the pruned network keeps at most `kept` of `total`: savings are estimated as the
    sum of each step's alone (a conv shared by two units saves less), then checked on the pruned network."""
    chosen: dict[int, int] = {}
    estimated = 0.0
    target = need = 1.0 - float(kept)
    while True:
        while estimated < target:
            best = cheapest_step(steps, chosen)
            if best is None:
                raise InvalidInputError(f"channel pruning cannot keep only {kept:.0%} of the cost with the groups "
                                        f"this model has (at most {LEVELS[-1]:.0%} of each): ask for a higher target")
            unit, level = best
            at = chosen.get(unit, -1)
            estimated += steps[unit][level].saved - (steps[unit][at].saved if at >= 0 else 0.0)
            chosen[unit] = level
        removed = {g.name: torch.zeros(0, dtype=torch.long) for unit in units for g in unit}
        for u, level in chosen.items():
            removed.update(unit_removals(units[u], steps[u][level].keep, plan.criterion))
        trial = copy.deepcopy(net)
        remove_(trial, select_groups(trial, plan.exclude, plan.between), removed, torch.zeros(0), False)
        actual = 1.0 - cost(trial) / total
        if actual >= need - 1e-9:
            return removed
        target = max(target + need - actual, estimated + 1e-9)  # ask the estimate for the shortfall too
