"""OpenVINO on CPU: latency hint, one stream, a fixed number of inference threads."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from posebench.errors import InvalidInputError, ModelLoadError
from posebench.runtimes.base import Backend


class OpenVINOBackend(Backend):
    """Runs an OpenVINO IR (.xml) or an ONNX file. options: `device` (default "CPU"), `streams` (default 1),
    `flush_denormals` (bool: the CPU plugin's denormals optimization, flush-to-zero), `inference_precision`
    (auto by default: see `auto_precision`; f32, bf16 or f16 to choose)."""

    name = "openvino"
    artifact_format = "openvino"
    cpu_int8 = "own"
    ultralytics_predict = True
    requires = ("openvino",)
    install_hint = "pip install openvino"
    # OpenVINO's CPU plugin runs "fp32" models in bf16 on CPUs with AVX512_BF16 or AMX unless told otherwise
    # (found on an AMD Zen 4: 0.6 % output error against torch): posebench asks for f32 for float models unless a
    # run opts in; an int8 model's float parts run bf16 there (`auto_precision`).
    identity_options = {"device": "CPU", "streams": 1, "flush_denormals": False, "inference_precision": "auto"}
    input_layouts = ("nchw_float", "nhwc_u8_bgr")
    fuse_by_default = True  # the PrePostProcessor's conversion is compiled into the model: a tie or better

    def __init__(self, artifact: Path, *, threads: int, options: dict[str, Any] | None = None):
        super().__init__(artifact, threads=threads, options=options)
        import openvino as ov
        import openvino.properties as props
        import openvino.properties.hint as hints

        core = ov.Core()
        self._device = self.options.get("device", "CPU")
        precision = str(self.options.get("inference_precision", "auto"))
        if precision not in ("auto", "f32", "bf16", "f16"):
            raise InvalidInputError(f"openvino inference_precision must be auto, f32, bf16 or f16, got {precision!r}")
        if precision == "auto":
            precision = auto_precision(self.artifact)
        config = {
            hints.inference_precision: getattr(ov.Type, precision),
            hints.performance_mode: hints.PerformanceMode.LATENCY,
            props.num_streams: int(self.options.get("streams", 1)),
            props.inference_num_threads: self.threads,
        }
        self._ftz = bool(self.options.get("flush_denormals", False))
        if self._ftz and self._device == "CPU":
            import openvino.properties.intel_cpu as cpu

            config[cpu.denormals_optimization] = True
        try:
            model = core.read_model(str(self.artifact))
            if self.input_layout == "nhwc_u8_bgr":
                model = fuse_preprocessing(model)
            self._compiled = core.compile_model(model, self._device, config)
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses with long C++ traces
            raise ModelLoadError(f"openvino could not load {self.artifact}: {str(exc).splitlines()[0]}") from exc
        self._request = self._compiled.create_infer_request()
        self._ov = ov
        self._props = props

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        results = self._request.infer({0: batch})
        return list(results.to_tuple())

    def replica(self) -> OpenVINOBackend:
        """The same compiled model with its own infer request (give it `streams` >= the frames in flight).

        OpenVINO's Python bindings initialise a function-local static on the first read of a tensor's data
        (pybind11's numpy API lookup) and release the GIL inside it: two threads making their first read at once
        deadlock (1 run in 12 with two frames in flight). One inference here, while the caller is still the only
        thread, initialises it."""
        port = self._compiled.inputs[0]
        self.infer(np.zeros(tuple(port.get_shape()), port.get_element_type().to_dtype()))
        twin = copy.copy(self)
        twin._request = self._compiled.create_infer_request()
        return twin

    def info(self) -> dict[str, Any]:
        cm, props = self._compiled, self._props
        return {**super().info(), "version": self._ov.__version__, "device": self._device,
                "effective_threads": int(cm.get_property(props.inference_num_threads)),
                "streams": int(cm.get_property(props.num_streams)), "flush_denormals": self._ftz,
                "precision": str(cm.get_property(props.hint.inference_precision))}


def auto_precision(artifact: Path, isa: set[str] | None = None) -> str:
    """The float precision an artifact runs with by default: bf16 for the float parts of an int8 model on a CPU
    that computes bf16 (AVX512_BF16 or AMX, as its oneDNN kernels see it), where it is as fast as Ultralytics'
    int8 export at posebench's accuracy (coco-pose-val: pose mAP50-95 0.505 in f32 and in bf16); f32 otherwise (a
    float model stays exact unless a run asks for bf16)."""
    from posebench.machine.cpu import bf16_arithmetic, cpu_flags

    if not bf16_arithmetic(cpu_flags() if isa is None else isa):
        return "f32"
    try:
        from posebench.export.artifact import read_metadata

        precision = read_metadata(artifact).get("precision")
    except Exception:  # an artifact made elsewhere, without posebench's metadata: read its weights' types
        precision = "int8" if _has_int8_weights(artifact) else "fp32"
    return "bf16" if precision == "int8" else "f32"


def _has_int8_weights(artifact: Path) -> bool:
    """Whether an IR holds FakeQuantize or integer weights (an int8 model made by another tool)."""
    if artifact.suffix != ".xml" or not artifact.is_file():
        return False
    text = artifact.read_text(errors="ignore")
    return 'type="FakeQuantize"' in text or 'element_type="i8"' in text


def fuse_preprocessing(model: Any) -> Any:
    """The model behind OpenVINO's PrePostProcessor: it takes a letterboxed BGR uint8 NHWC frame and does the
    colour swap, float conversion, scaling to [0, 1] and NCHW layout itself (compiled and fused with the first
    layer by the CPU plugin) instead of numpy doing them per frame."""
    import openvino as ov
    from openvino.preprocess import ColorFormat, PrePostProcessor

    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")).set_color_format(ColorFormat.BGR)
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    ppp.input().preprocess().convert_element_type(ov.Type.f32).convert_color(ColorFormat.RGB).scale(255.0)
    return ppp.build()
