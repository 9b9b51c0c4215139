"""Machine-quietness probe: a fixed reference workload timed before and after a study.

The workload is a float32 matrix product (256 x 256 x 256, numpy's BLAS) on a fixed number of threads in a
fresh process, repeated in short chunks for about a second. Its rate (GFLOP/s, median of the chunks) and the
spread of the chunks (interquartile range / median) say how quiet the machine was: a study whose probe moved
by more than 10 % between before and after, or whose chunks spread by more than 10 %, ran on a busy machine and its latencies are
suspect. The probe is a record in the results store (kind "probe"), so reports show it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

SIZE = 256
NOISY = 0.10  # relative difference that marks a machine as noisy


def _workload(seconds: float) -> dict[str, Any]:
    import time

    import numpy as np

    rng = np.random.default_rng(0)
    a, b = rng.random((SIZE, SIZE), dtype=np.float32), rng.random((SIZE, SIZE), dtype=np.float32)
    for _ in range(20):  # warm-up
        a @ b
    rates = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(rates) < 5:
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        rates.append(10 * 2 * SIZE**3 / (time.perf_counter() - start) / 1e9)
    q25, median, q75 = (float(v) for v in np.percentile(rates, [25, 50, 75]))
    return {"gflops": median, "chunks": len(rates), "spread": (q75 - q25) / median}


def run_probe(threads: int, seconds: float = 1.0) -> dict[str, Any]:
    """Time the reference workload on `threads` threads in a fresh process."""
    env = {**os.environ, **{k: str(threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
    proc = subprocess.run([sys.executable, "-m", "posebench.machine.probe", str(seconds)], env=env, capture_output=True,
                          text=True, check=True)
    return {"threads": threads, "workload": f"float32 matmul {SIZE}^3 (numpy BLAS)", "seconds": seconds,
            **json.loads(proc.stdout)}


def quietness(probes: list[dict[str, Any]]) -> tuple[bool, str]:
    """(noisy?, explanation) from a study's probe records (each with `when` and `probe`)."""
    if not probes:
        return False, "no quietness probe recorded"
    by_when = {p.get("when"): p["probe"] for p in probes}
    notes = [f"{w}: {p['gflops']:.1f} GFLOP/s (chunk spread {p['spread']:.0%})" for w, p in by_when.items()]
    noisy = any(p["spread"] > NOISY for p in by_when.values())
    if "before" in by_when and "after" in by_when:
        change = abs(by_when["after"]["gflops"] - by_when["before"]["gflops"]) / by_when["before"]["gflops"]
        notes.append(f"before -> after {change:.0%}")
        noisy = noisy or change > NOISY
    return noisy, "; ".join(notes)


if __name__ == "__main__":
    print(json.dumps(_workload(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)))
