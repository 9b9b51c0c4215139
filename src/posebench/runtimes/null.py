"""The null runtime: returns preallocated outputs. Its latency is the harness's own overhead."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import numpy as np

from posebench.runtimes.base import Backend


class NullBackend(Backend):
    """Reads the output shapes from the artifact's metadata sidecar and returns zeros of them (after `delay_ms`)."""

    name = "null"
    artifact_format = "onnx"
    runs_model = False
    input_layouts = ("nchw_float", "nhwc_u8_bgr")
    # delay_ms: a deliberately slow runtime (sleeps that long per call): proves that a stream counts dropped frames
    identity_options = {"delay_ms": 0.0}

    def __init__(self, artifact: Path, *, threads: int, options: dict[str, Any] | None = None):
        super().__init__(artifact, threads=threads, options=options)
        from posebench.export import read_metadata

        meta = read_metadata(self.artifact)
        self._outputs = [np.zeros(shape, dtype=np.float32) for shape in meta["output_shapes"]]
        self._delay = float(self.options.get("delay_ms", 0.0)) / 1000.0

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        if self._delay:
            time.sleep(self._delay)
        return self._outputs

    def replica(self) -> NullBackend:
        """Stateless: a copy."""
        return copy.copy(self)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "version": "n/a", "device": "none"}
