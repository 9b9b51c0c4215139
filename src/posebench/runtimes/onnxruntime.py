"""ONNX Runtime: CPU execution provider by default; CUDA and TensorRT providers when asked for."""

from __future__ import annotations

import copy
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
    cpu_int8 = "u8s8"
    ultralytics_predict = True
    requires = ("onnxruntime",)
    install_hint = "pip install onnxruntime (or onnxruntime-gpu for the CUDA/TensorRT providers)"
    identity_options = {"provider": "cpu", "flush_denormals": False}
    input_layouts = ("nchw_float", "nhwc_u8_bgr")
    # the graph ops run unfused, one pass each: measured 0.96-1.05x of numpy's vectorised path, so not the default
    fuse_by_default = False

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
            model = str(self.artifact)
            if self.input_layout == "nhwc_u8_bgr":
                model = fuse_preprocessing(self.artifact)
            self._session = ort.InferenceSession(model, so, providers=providers)
        except Exception as exc:  # ORT raises its own exception types for bad models
            raise ModelLoadError(f"onnxruntime could not load {self.artifact}: {exc}") from exc
        self._input = self._session.get_inputs()[0].name
        self._ort = ort
        self._provider = provider

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        return self._session.run(None, {self._input: batch})

    def replica(self) -> OnnxRuntimeBackend:
        """ONNX Runtime's `run` is thread-safe: callers share the session (each run uses the session's threads)."""
        return copy.copy(self)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "version": self._ort.__version__, "provider": self._provider,
                "flush_denormals": self._ftz, "device": "gpu" if self._provider != "CPUExecutionProvider" else "cpu"}


def fuse_preprocessing(path: Path) -> bytes:
    """The ONNX model with its pre-processing as graph ops in front: a letterboxed BGR uint8 NHWC frame goes in;
    Cast, channel reversal (BGR -> RGB), Transpose to NCHW and the division by 255 run inside ONNX Runtime."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    initializer_names = {i.name for i in graph.initializer}
    real_inputs = [i for i in graph.input if i.name not in initializer_names]
    if len(real_inputs) != 1:
        raise ModelLoadError(f"{path}: fused pre-processing needs a model with one image input, found "
                             f"{len(real_inputs)}")
    image = real_inputs[0]
    dims = [d.dim_value for d in image.type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[1] != 3 or not all(dims):
        raise ModelLoadError(f"{path}: fused pre-processing needs a static 1x3xHxW input, found {dims}")
    n, _, h, w = dims
    name = image.name
    raw = f"{name}_bgr_u8"
    prefix = "posebench_preprocess"
    graph.initializer.extend([
        numpy_helper.from_array(np.array([2, 1, 0], np.int64), f"{prefix}_rgb"),
        numpy_helper.from_array(np.array(255.0, np.float32), f"{prefix}_255"),
    ])
    nodes = [  # reorder and transpose the bytes first (a quarter of the memory traffic), then one float pass
        helper.make_node("Transpose", [raw], [f"{prefix}_nchw_u8"], perm=[0, 3, 1, 2], name=f"{prefix}/to_nchw"),
        helper.make_node("Gather", [f"{prefix}_nchw_u8", f"{prefix}_rgb"], [f"{prefix}_rgb_u8"], axis=1,
                         name=f"{prefix}/bgr_to_rgb"),
        helper.make_node("Cast", [f"{prefix}_rgb_u8"], [f"{prefix}_f32"], to=TensorProto.FLOAT, name=f"{prefix}/cast"),
        helper.make_node("Div", [f"{prefix}_f32", f"{prefix}_255"], [name], name=f"{prefix}/scale"),
    ]
    for node in reversed(nodes):
        graph.node.insert(0, node)
    graph.input.remove(image)
    graph.input.insert(0, helper.make_tensor_value_info(raw, TensorProto.UINT8, [n, h, w, 3]))
    return model.SerializeToString()
