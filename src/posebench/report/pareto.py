"""The Pareto front of anything with a cost to minimise and a value to maximise (latency and accuracy)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


def pareto(items: Iterable[T], cost: Callable[[T], float], value: Callable[[T], float | None]) -> list[T]:
    """Items no other beats on both cost (lower) and value (higher), cheapest first; items without a value are
    left out, and of exact ties the first one stays."""
    scored = sorted((i for i in items if value(i) is not None), key=lambda i: (cost(i), -value(i)))
    front: list[T] = []
    for item in scored:
        if not front or value(item) > value(front[-1]):
            front.append(item)
    return front
