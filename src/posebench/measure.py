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
    if spec.get("mode", "model") == "e2e":
        return run_e2e(spec, protocol)
    h, w = spec["imgsz"]
    batch = fixed_input((1, 3, h, w))
    with create_backend(spec["runtime"], Path(spec["artifact"]), threads=spec["threads"],
                        options=spec.get("options")) as backend:
        stats = backend.measure(batch, protocol)
        info = backend.info()
    return {"status": "ok", "latency": stats.to_dict(), "backend": info, "pid": os.getpid()}


def run_e2e(spec: dict[str, Any], protocol: Any) -> dict[str, Any]:
    """End-to-end mode: decoded frames of `source` through the whole pipeline, each stage timed."""
    from posebench.evaluate.postprocess import NMSConfig
    from posebench.pipeline import load_frames, measure_e2e, open_pipeline

    e2e = spec["e2e"]
    frames = load_frames(Path(e2e["source"]), int(e2e.get("max_frames", 64)))
    if e2e.get("pipeline", "posebench") == "ultralytics":
        return run_ultralytics(spec, protocol, frames)
    pipeline = open_pipeline(spec["runtime"], Path(spec["artifact"]), threads=spec["threads"],
                             options=spec.get("options"), preprocess=e2e.get("preprocess", "auto"),
                             nms=NMSConfig(**e2e["nms"]), imgsz=tuple(spec["imgsz"]))
    with pipeline.backend as backend:
        stats = measure_e2e(pipeline, frames, protocol)
        info = backend.info()
    frame_shapes = sorted({f"{f.shape[1]}x{f.shape[0]}" for f in frames})
    return {"status": "ok", **stats.to_dict(), "pipeline": {**pipeline.describe(), "frame_sizes": frame_shapes},
            "backend": info, "pid": os.getpid()}


def run_ultralytics(spec: dict[str, Any], protocol: Any, frames: list) -> dict[str, Any]:
    """Ultralytics' `predict` as the reference pipeline, in this process pinned to `threads` cores (Ultralytics
    sizes its runtime's thread pool to the cores it sees)."""
    from posebench.evaluate.postprocess import NMSConfig
    from posebench.export import read_metadata
    from posebench.pipeline import UltralyticsPipeline, measure_e2e

    threads = int(spec["threads"])
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pinned = cores[:threads] if len(cores) > threads else cores
    if len(cores) > threads:
        os.sched_setaffinity(0, pinned)
    artifact = Path(spec["artifact"])
    pipeline = UltralyticsPipeline(artifact, meta=read_metadata(artifact) or {}, imgsz=tuple(spec["imgsz"]),
                                   threads=threads, nms=NMSConfig(**spec["e2e"]["nms"]))
    try:
        stats = measure_e2e(pipeline, frames, protocol)
    finally:
        pipeline.close()
    frame_shapes = sorted({f"{f.shape[1]}x{f.shape[0]}" for f in frames})
    return {"status": "ok", **stats.to_dict(), "pipeline": {**pipeline.describe(), "frame_sizes": frame_shapes},
            "backend": {"runtime": spec["runtime"], "threads": threads, "cores_pinned": pinned,
                        "artifact": str(artifact), "device": "cpu"}, "pid": os.getpid()}


def main(argv: list[str]) -> int:
    spec_path, result_path = Path(argv[0]), Path(argv[1])
    spec = json.loads(spec_path.read_text())
    from posebench.errors import PosebenchError
    from posebench.record import Failure

    try:
        result = run(spec)
    except Exception as exc:  # recorded on the trial; the run goes on with the next one
        if not isinstance(exc, PosebenchError):
            traceback.print_exc()
        result = {**Failure.from_exception(exc).to_result(), "pid": os.getpid()}
    result_path.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
