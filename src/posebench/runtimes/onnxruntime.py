"""ONNX Runtime: CPU execution provider by default; CUDA and TensorRT providers when asked for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from posebench.errors import ModelLoadError, RuntimeUnavailableError
from posebench.runtimes.base import Backend

PROVIDER_ALIASES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                    "tensorrt": "TensorrtExecutionProvider"}


class OnnxRuntimeBackend(Backend):
    """options: `provider` ("cpu" | "cuda" | "tensorrt"), `provider_options` (dict), `flush_denormals` (bool:
    denormal numbers read as zero, ONNX Runtime's `session.set_denormal_as_zero`)."""

    name = "onnxruntime"
    artifact_format = "onnx"
    requires = ("onnxruntime",)
    install_hint = "pip install onnxruntime (or onnxruntime-gpu for the CUDA/TensorRT providers)"
    identity_options = {"provider": "cpu", "flush_denormals": False}

    def __init__(self, artifact: Path, *, threads: int, options: dict[str, Any] | None = None):
        super().__init__(artifact, threads=threads, options=options)
        import onnxruntime as ort

        provider = PROVIDER_ALIASES.get(self.options.get("provider", "cpu"), self.options.get("provider"))
        if provider not in ort.get_available_providers():
            raise RuntimeUnavailableError(
                f"onnxruntime provider {provider} is not available here "
                f"(available: {', '.join(ort.get_available_providers())}); "
                "GPU providers need onnxruntime-gpu and an NVIDIA GPU"
            )
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._ftz = bool(self.options.get("flush_denormals", False))
        if self._ftz:
            so.add_session_config_entry("session.set_denormal_as_zero", "1")
        providers = [(provider, self.options.get("provider_options", {}))]
        if provider != "CPUExecutionProvider":
            providers.append(("CPUExecutionProvider", {}))
        try:
            self._session = ort.InferenceSession(str(self.artifact), so, providers=providers)
        except Exception as exc:  # ORT raises its own exception types for bad models
            raise ModelLoadError(f"onnxruntime could not load {self.artifact}: {exc}") from exc
        self._input = self._session.get_inputs()[0].name
        self._ort = ort
        self._provider = provider

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        return self._session.run(None, {self._input: batch})

    def info(self) -> dict[str, Any]:
        return {**super().info(), "version": self._ort.__version__, "provider": self._provider,
                "flush_denormals": self._ftz, "device": "gpu" if self._provider != "CPUExecutionProvider" else "cpu"}
