"""The latency protocol: both minimums met, warm-up honoured, statistics right, bad values refused."""

from __future__ import annotations

import time

import numpy as np
import pytest

from posebench.errors import InvalidInputError
from posebench.latency import LatencyProtocol, measure, summarize


def test_summary_statistics_of_known_samples():
    samples = np.arange(1, 101, dtype=np.int64) * 1_000_000  # 1..100 ms
    stats = summarize(samples, timed_seconds=5.05, warmup_count=3)
    assert stats.count == 100 and stats.min_ms == 1 and stats.max_ms == 100
    assert stats.mean_ms == pytest.approx(50.5)
    assert stats.p50_ms == pytest.approx(50.5) and stats.p90_ms == pytest.approx(90.1)
    assert stats.p99_ms == pytest.approx(99.01)
    assert stats.throughput_ips == pytest.approx(1000 / 50.5)


def test_count_minimum_is_met_even_when_duration_is_short():
    calls = []
    stats = measure(lambda: calls.append(1), LatencyProtocol(iters=500, min_seconds=0, warmup_iters=10,
                                                              warmup_seconds=0))
    assert stats.count == 500 and stats.warmup_count == 10 and len(calls) == 510


def test_duration_minimum_is_met_even_when_count_is_reached():
    stats = measure(lambda: time.sleep(0.001), LatencyProtocol(iters=3, min_seconds=0.1, warmup_iters=0,
                                                                 warmup_seconds=0.02))
    assert stats.count > 3  # kept going until 0.1 s had passed
    assert stats.timed_seconds >= 0.1
    assert stats.warmup_count >= 2  # warm-up lasted at least 0.02 s of 1 ms calls
    assert stats.min_ms >= 1.0  # the sleep is inside the timed region


def test_cap_stops_and_flags_the_run():
    stats = measure(lambda: time.sleep(0.002), LatencyProtocol(iters=10_000, min_seconds=0, warmup_iters=0,
                                                                 warmup_seconds=0, max_seconds=0.05))
    assert stats.capped and stats.count < 10_000


def test_tail_is_not_clipped():
    durations = iter([0.0] * 99 + [0.03])
    stats = measure(lambda: time.sleep(next(durations)), LatencyProtocol(iters=100, min_seconds=0,
                                                                          warmup_iters=0, warmup_seconds=0))
    assert stats.max_ms >= 30  # the one slow call is in the record


@pytest.mark.parametrize("field,value", [("iters", 0), ("iters", -5), ("min_seconds", -1.0),
                                         ("warmup_iters", -1), ("max_seconds", float("nan"))])
def test_bad_protocol_values_are_refused(field, value):
    with pytest.raises(InvalidInputError, match=field.split("_")[0]):
        LatencyProtocol(**{field: value})
