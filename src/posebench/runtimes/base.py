"""The backend interface every runtime implements, and the registry that names them.

A backend loads one artifact with a fixed thread count, takes an NCHW float32 batch and returns
the model's raw output tensors (same layout on every runtime). Runtime libraries are imported by
the backend's own module, only when that backend is created.
"""

from __future__ import annotations

import importlib
import importlib.util
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from posebench.errors import RuntimeNotInstalledError, UnknownRuntimeError, did_you_mean
from posebench.latency import LatencyProtocol, LatencyStats, measure

# name -> (module, class). Modules are imported lazily so a missing runtime never breaks the others.
REGISTRY: dict[str, tuple[str, str]] = {
    "torch": ("posebench.runtimes.pytorch", "TorchBackend"),
    "onnxruntime": ("posebench.runtimes.onnxruntime", "OnnxRuntimeBackend"),
    "openvino": ("posebench.runtimes.openvino", "OpenVINOBackend"),
    "deepsparse": ("posebench.runtimes.deepsparse", "DeepSparseBackend"),
    "tensorrt": ("posebench.runtimes.tensorrt", "TensorRTBackend"),
    "null": ("posebench.runtimes.null", "NullBackend"),
}
CPU_RUNTIMES = ("torch", "onnxruntime", "openvino", "deepsparse", "null")


class Backend(ABC):
    """One loaded model on one runtime. Use as a context manager or call `close()`."""

    name: ClassVar[str]
    artifact_format: ClassVar[str]  # which export it runs: "pt", "onnx" or "openvino"
    accepts: ClassVar[tuple[str, ...]] = ()  # imported formats it also runs as they are (TensorRT: "engine")
    prefers: ClassVar[tuple[str, ...]] = ()  # a bundle's artifacts it runs in preference to its format's (DeepSparse)
    requires: ClassVar[tuple[str, ...]] = ()  # importable modules it needs
    install_hint: ClassVar[str] = ""
    # options that change what runs, with their defaults: a non-default value enters the trial's identity
    identity_options: ClassVar[dict[str, Any]] = {}
    # input layouts `infer` can take besides NCHW float32 (option `input`): "nhwc_u8_bgr" is a letterboxed BGR
    # uint8 frame, with colour order, layout and scaling done inside the compiled model (fused pre-processing)
    input_layouts: ClassVar[tuple[str, ...]] = ("nchw_float",)
    fuse_by_default: ClassVar[bool] = False  # whether pre-processing 'auto' fuses it into the model (measured faster)
    # what the rest of posebench asks of a runtime (instead of comparing its name):
    runs_model: ClassVar[bool] = True  # False: the null runtime, the harness alone (no work to count or score)
    device: ClassVar[str] = "cpu"  # where the model runs: "cpu" or "gpu"
    # how an int8 model runs on this CPU: "" (not on the CPU's int8 kernels), "u8s8" (u8 x s8 kernels that
    # saturate with full 8-bit weights on CPUs without VNNI), "own" (the runtime picks its kernels per CPU)
    cpu_int8: ClassVar[str] = ""
    ultralytics_predict: ClassVar[bool] = False  # Ultralytics' predict runs this runtime's artifact too

    @classmethod
    def identity(cls, options: dict[str, Any] | None) -> dict[str, Any]:
        """The options of a run that belong to its trial identity (those set away from their default)."""
        return {k: v for k, v in sorted((options or {}).items())
                if k in cls.identity_options and v != cls.identity_options[k]}

    def __init__(self, artifact: Path, *, threads: int, options: dict[str, Any] | None = None):
        self.artifact = Path(artifact)
        self.threads = int(threads)
        self.options = dict(options or {})
        self.input_layout = str(self.options.get("input", "nchw_float"))
        if self.input_layout not in self.input_layouts:
            from posebench.errors import InvalidInputError

            raise InvalidInputError(f"runtime '{self.name}' cannot take input '{self.input_layout}' "
                                    f"(it takes: {', '.join(self.input_layouts)})")

    @classmethod
    def check_installed(cls) -> None:
        """Raise `RuntimeNotInstalledError` with the install command if a dependency is missing."""
        for module in cls.requires:
            if importlib.util.find_spec(module) is None:
                raise RuntimeNotInstalledError(
                    f"runtime '{cls.name}' is not installed (python module '{module}' not found). "
                    f"Install it with: {cls.install_hint}"
                )

    @abstractmethod
    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run one batch (NCHW float32, or what the `input` option names) and return the raw output tensors."""

    def measure(self, batch: np.ndarray, protocol: LatencyProtocol) -> LatencyStats:
        """Time `infer(batch)` under the protocol (a worker-backed runtime times inside the worker)."""
        return measure(lambda: self.infer(batch), protocol)

    def replica(self) -> Backend:
        """Another handle on the same loaded model for a concurrent caller (a second frame in flight); runtimes
        that cannot share one loaded model between threads refuse."""
        from posebench.errors import InvalidInputError

        raise InvalidInputError(f"runtime '{self.name}' runs one frame at a time here: use --inflight 1 (frames in "
                                "flight at once: openvino, onnxruntime)")

    def info(self) -> dict[str, Any]:
        """What this backend is running: runtime version, device, precision, effective settings."""
        return {"runtime": self.name, "threads": self.threads, "artifact": str(self.artifact)}

    def close(self) -> None:
        """Release the runtime's resources."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def backend_class(name: str) -> type[Backend]:
    """Return the backend class registered as `name` (imports its module, not its runtime)."""
    if name not in REGISTRY:
        raise UnknownRuntimeError(
            f"unknown runtime '{name}'.{did_you_mean(name, REGISTRY)} "
            f"Known runtimes: {', '.join(REGISTRY)}"
        )
    module, cls = REGISTRY[name]
    return getattr(importlib.import_module(module), cls)


def runtime_class(spec: str) -> type[Backend]:
    """The backend class of a runtime spec ('openvino[inference_precision=bf16]' -> the OpenVINO backend)."""
    return backend_class(runtime_name(spec))


def ultralytics_can_predict(spec: str) -> bool:
    """Whether Ultralytics' own predict runs this runtime spec as posebench does (its runtime, no options of
    posebench's, which Ultralytics would not apply)."""
    name, options = parse_runtime_spec(spec)
    return not options and backend_class(name).ultralytics_predict


def create_backend(name: str, artifact: Path, *, threads: int,
                   options: dict[str, Any] | None = None) -> Backend:
    """Load `artifact` on runtime `name` with `threads` threads."""
    cls = backend_class(name)
    cls.check_installed()
    return cls(artifact, threads=threads, options=options)


def split_specs(text: str) -> list[str]:
    """'a,b[x=1,y=2],c' -> ['a', 'b[x=1,y=2]', 'c'] (commas inside brackets belong to the spec)."""
    specs, depth, current = [], 0, ""
    for ch in text:
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            specs.append(current.strip())
            current = ""
        else:
            current += ch
    specs.append(current.strip())
    return [s for s in specs if s]


def runtime_name(spec: str) -> str:
    """'openvino[inference_precision=bf16]' -> 'openvino' (not validated)."""
    return spec.partition("[")[0].strip()


def parse_runtime_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """'tensorrt[precision=fp16]' -> ('tensorrt', {'precision': 'fp16'}); values true/false/numbers are typed.
    Only options in the backend's `identity_options` may be given this way."""
    import yaml

    from posebench.errors import InvalidInputError

    name, rest = runtime_name(spec), spec.strip().partition("[")[2]
    cls = backend_class(name)
    options: dict[str, Any] = {}
    if rest:
        if not rest.endswith("]"):
            raise InvalidInputError(f"runtime spec '{spec}': options go in brackets, e.g. tensorrt[precision=fp16]")
        for item in filter(None, (i.strip() for i in rest[:-1].split(","))):
            key, eq, value = item.partition("=")
            if not eq or key.strip() not in cls.identity_options:
                known = ", ".join(f"{k} (default {v})" for k, v in cls.identity_options.items()) or "none"
                raise InvalidInputError(f"runtime spec '{spec}': '{item}' is not an option of {name}; "
                                        f"its options: {known}")
            options[key.strip()] = yaml.safe_load(value.strip())
    return name, options


def parse_runtimes(text: str) -> list[str]:
    """Parse 'onnxruntime,openvino' or 'all' (every CPU runtime) into validated runtime specs (a spec is a name,
    optionally with options: 'tensorrt[precision=fp16]')."""
    names = split_specs(text)
    if names == ["all"]:
        return list(CPU_RUNTIMES)
    if not names:
        raise UnknownRuntimeError(f"no runtime given. Known runtimes: {', '.join(REGISTRY)}, or 'all'")
    for name in names:
        parse_runtime_spec(name)
    return list(dict.fromkeys(names))
