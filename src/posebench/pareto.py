"""The Pareto front of anything with a cost to minimise and a value to maximise (latency and accuracy)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


def pareto(items: Iterable[T], cost: Callable[[T], float], value: Callable[[T], float | None],
           better: Callable[[T, T], bool | None] | None = None) -> list[T]:
    """Items no other beats on both cost (lower) and value (higher), cheapest first; items without a value are
    left out, and of exact ties the first one stays.

    With `better(a, b)` (True: a's value is resolvably above b's, False: not resolved, None: cannot tell), a
    costlier item joins the front only when it is resolvably better than the front's last item: a front of
    differences the measurements can tell apart, not of noise. Where `better` cannot tell, the values decide."""
    scored = sorted((i for i in items if value(i) is not None), key=lambda i: (cost(i), -value(i)))
    front: list[T] = []
    for item in scored:
        if front and value(item) <= value(front[-1]):
            continue
        told = better(item, front[-1]) if front and better is not None else None
        if told is None or told:
            front.append(item)
    return front
