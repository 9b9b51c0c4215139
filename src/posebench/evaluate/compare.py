"""Paired comparisons between accuracy records: is a deployment within a tolerance of its baseline, or can the
images not tell? Used by the study report and `posebench tune` (the statistics live in
`posebench.evaluate.uncertainty`)."""

from __future__ import annotations

from typing import Any

from posebench.evaluate.uncertainty import Difference, Matches, paired_differences

METRIC_OF_SCORE = {"fidelity": "coco.AP", "labels": "pose.map50_95"}


def matches_of(accuracy: dict[str, Any] | None) -> Matches | None:
    """The per-image matches an accuracy record carries (None for records made before they were kept)."""
    payload = (accuracy or {}).get("matches")
    return Matches.from_payload(payload) if payload else None


def difference(candidate: dict[str, Any] | None, baseline: dict[str, Any] | None,
               metric: str = "pose.map50_95") -> Difference | None:
    """candidate - baseline of `metric` on the same images with its paired interval; None when either record has
    no per-image matches, or when both are the same record."""
    if candidate is None or baseline is None or candidate is baseline:
        return None
    a, b = matches_of(candidate), matches_of(baseline)
    if a is None or b is None:
        return None
    group = metric.split(".")[0]
    return paired_differences(a, b, groups=(group,))[metric]


def within_words(d: Difference | None, tolerance: float, *, points: bool = True) -> str:
    """How a difference reads against a tolerance: within it, beyond it, or not resolved by these images."""
    if d is None:
        return "no interval (the records carry no per-image matches)"
    k, unit = (100, " point(s)") if points else (1, "")
    tol = f"{tolerance * k:g}{unit}"
    verdict = d.within(tolerance)
    if verdict is True:
        state = f"within {tol}" + ("; which is better is not resolved (the interval spans zero)"
                                   if not d.resolved else "")
    elif verdict is False:
        state = f"more than {tol} below"
    else:
        state = f"not resolved: the interval reaches below -{tol}"
    return f"{d.describe(points=points).rsplit(',', 1)[0]}: {state}"
