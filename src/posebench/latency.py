"""The one latency protocol every runtime is timed with.

Batch 1, a fixed input, a warm-up that must reach both a count and a duration, then timed runs
until both a minimum count (2000, as the thesis) and a minimum duration are met. Only the runtime
call sits between the two `perf_counter_ns` reads ("model" mode, as the thesis). The tail is kept:
p90/p99/max are reported, nothing is clipped.

This module needs only the standard library and numpy: the DeepSparse worker imports it from its
own (numpy<2) environment, so the timing loop there is this same code.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

PROTOCOL_VERSION = 1


@dataclass(frozen=True)
class LatencyProtocol:
    """How a batch-1 latency is measured; every field is recorded with the result."""

    iters: int = 2000  # minimum timed runs (the thesis timed 2000)
    min_seconds: float = 10.0  # minimum timed duration; both minimums must be met
    warmup_iters: int = 50  # minimum warm-up runs
    warmup_seconds: float = 2.0  # minimum warm-up duration
    max_seconds: float = 0.0  # hard cap on the timed phase (0 = none); a capped run is flagged

    def __post_init__(self) -> None:
        from posebench.errors import InvalidInputError

        if not isinstance(self.iters, int) or self.iters < 1:
            raise InvalidInputError(f"iters must be a positive whole number, got {self.iters!r}")
        if self.warmup_iters < 0:
            raise InvalidInputError(f"warmup iterations must be >= 0, got {self.warmup_iters!r}")
        for name in ("min_seconds", "warmup_seconds", "max_seconds"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise InvalidInputError(f"{name} must be a finite number >= 0, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"version": PROTOCOL_VERSION, "mode": "model", **asdict(self)}

    @classmethod
    def from_study(cls, latency: dict[str, Any]) -> LatencyProtocol:
        """A study file's `latency:` block (iters, min_seconds, warmup, warmup_seconds, max_seconds); what it leaves
        out is the default protocol's."""
        d = cls()
        return cls(iters=int(latency.get("iters", d.iters)), min_seconds=float(latency.get("min_seconds", d.min_seconds)),
                   warmup_iters=int(latency.get("warmup", d.warmup_iters)),
                   warmup_seconds=float(latency.get("warmup_seconds", d.warmup_seconds)),
                   max_seconds=float(latency.get("max_seconds", d.max_seconds)))


# The one home of the protocols posebench times with: `bench` and studies default to the thesis's; `tune` times a
# coarse stage then a fine one, and `tune --quick` shorter versions of both (a smoke run, not a verdict).
DEFAULT_PROTOCOL = LatencyProtocol()
TUNE_COARSE = LatencyProtocol(iters=50, min_seconds=2.0, warmup_iters=10, warmup_seconds=1.0)
TUNE_FINE = LatencyProtocol(iters=200, min_seconds=6.0, warmup_iters=20, warmup_seconds=2.0)
QUICK_COARSE = LatencyProtocol(iters=10, min_seconds=0.2, warmup_iters=3, warmup_seconds=0.1)
QUICK_FINE = LatencyProtocol(iters=20, min_seconds=0.5, warmup_iters=5, warmup_seconds=0.2)
# Thread counts unless told: one deployment runs on DEFAULT_THREADS (val, stream, tune); `bench` sweeps SWEEP_THREADS.
DEFAULT_THREADS = 2
SWEEP_THREADS = (1, 2)


@dataclass(frozen=True)
class LatencyStats:
    """Summary of one timed phase, in milliseconds unless named otherwise."""

    count: int
    mean_ms: float
    std_ms: float
    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    throughput_ips: float  # inferences per second of model time (1000 / mean)
    timed_seconds: float  # wall time of the timed phase, harness overhead included
    warmup_count: int
    capped: bool  # True when max_seconds stopped the run before both minimums were met

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyStats:
        """Read back what `to_dict` wrote (a figure a record lacks reads as NaN, a count as 0)."""
        nan = float("nan")
        return cls(count=int(data.get("count", 0)), mean_ms=float(data.get("mean_ms", nan)),
                   std_ms=float(data.get("std_ms", nan)), min_ms=float(data.get("min_ms", nan)),
                   p50_ms=float(data.get("p50_ms", nan)), p90_ms=float(data.get("p90_ms", nan)),
                   p99_ms=float(data.get("p99_ms", nan)), max_ms=float(data.get("max_ms", nan)),
                   throughput_ips=float(data.get("throughput_ips", nan)),
                   timed_seconds=float(data.get("timed_seconds", nan)),
                   warmup_count=int(data.get("warmup_count", 0)), capped=bool(data.get("capped", False)))


def summarize(samples_ns: np.ndarray, *, timed_seconds: float, warmup_count: int,
              capped: bool = False) -> LatencyStats:
    """Turn per-call durations (nanoseconds) into a `LatencyStats`."""
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    mean = float(ms.mean())
    return LatencyStats(
        count=int(ms.size), mean_ms=mean, std_ms=float(ms.std()), min_ms=float(ms.min()),
        p50_ms=float(p50), p90_ms=float(p90), p99_ms=float(p99), max_ms=float(ms.max()),
        throughput_ips=1000.0 / mean if mean > 0 else float("inf"),
        timed_seconds=timed_seconds, warmup_count=warmup_count, capped=capped,
    )


def measure(call: Callable[[], object], protocol: LatencyProtocol,
            after: Callable[[int], None] | None = None) -> LatencyStats:
    """Time `call()` under `protocol`; only the call is inside the timed region. `after(n)`, if given, runs after
    the n-th timed call, outside the timed region (end-to-end timing collects its stage times there)."""
    clock = time.perf_counter_ns
    warm, start = 0, clock()
    warm_ns = int(protocol.warmup_seconds * 1e9)
    while warm < protocol.warmup_iters or clock() - start < warm_ns:
        call()
        warm += 1

    samples = np.empty(max(protocol.iters, 1024), dtype=np.int64)
    n, min_ns = 0, int(protocol.min_seconds * 1e9)
    cap_ns = int(protocol.max_seconds * 1e9) if protocol.max_seconds else None
    capped = False
    phase_start = clock()
    while True:
        t0 = clock()
        call()
        t1 = clock()
        if n == samples.size:
            samples = np.concatenate([samples, np.empty_like(samples)])
        samples[n] = t1 - t0
        if after is not None:
            after(n)
        n += 1
        elapsed = t1 - phase_start
        if n >= protocol.iters and elapsed >= min_ns:
            break
        if cap_ns is not None and elapsed >= cap_ns:
            capped = True
            break
    timed_seconds = (clock() - phase_start) / 1e9
    return summarize(samples[:n], timed_seconds=timed_seconds, warmup_count=warm, capped=capped)
