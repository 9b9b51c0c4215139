"""One latency measurement in a fresh process: `python -m posebench.measure SPEC.json RESULT.json`.

`bench` starts one of these per (runtime, threads) so runtimes never share thread pools or warm
caches. The spec names the runtime, artifact, threads, protocol and runtime options; the result
file gets the latency statistics and the backend's description, or the error that stopped it.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np

INPUT_SEED = 0  # the fixed batch-1 input: uniform [0, 1), as a letterboxed, normalised image


def fixed_input(shape: list[int] | tuple[int, ...]) -> np.ndarray:
    """The same NCHW float32 input for every runtime and run."""
    return np.random.default_rng(INPUT_SEED).random(tuple(shape), dtype=np.float32)


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Load the backend, time it under the protocol, describe it."""
    from posebench.latency import LatencyProtocol
    from posebench.runtimes import create_backend

    protocol = LatencyProtocol(**spec["protocol"])
    h, w = spec["imgsz"]
    batch = fixed_input((1, 3, h, w))
    with create_backend(spec["runtime"], Path(spec["artifact"]), threads=spec["threads"],
                        options=spec.get("options")) as backend:
        stats = backend.measure(batch, protocol)
        info = backend.info()
    return {"status": "ok", "latency": stats.to_dict(), "backend": info, "pid": os.getpid()}


def main(argv: list[str]) -> int:
    spec_path, result_path = Path(argv[0]), Path(argv[1])
    spec = json.loads(spec_path.read_text())
    from posebench.errors import PosebenchError, failure

    try:
        result = run(spec)
    except PosebenchError as exc:
        result = {**failure(exc), "pid": os.getpid()}
    except Exception as exc:  # recorded on the trial; the run goes on with the next one
        traceback.print_exc()
        result = {"status": "error", "error": f"{type(exc).__name__}: {exc}", "error_type": type(exc).__name__,
                  "pid": os.getpid()}
    result_path.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
