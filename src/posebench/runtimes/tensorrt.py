"""TensorRT on an NVIDIA GPU: builds (and caches) an engine from ONNX, runs it with CUDA buffers.

UNVERIFIED on the development machine (it has no GPU): written against the TensorRT 10 Python API
(`Builder`, `OnnxParser`, `IExecutionContext.set_tensor_address` / `execute_async_v3`) with torch
CUDA tensors as device buffers. QDQ (int8) ONNX models are built as explicit quantization.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from posebench.errors import ModelLoadError, RuntimeUnavailableError
from posebench.runtimes.base import Backend


def engine_bytes(path: Path) -> bytes:
    """A serialized engine without the metadata header Ultralytics puts in front (int32 length + JSON)."""
    import json

    data = path.read_bytes()
    size = int.from_bytes(data[:4], "little", signed=True)
    if 0 < size < min(len(data) - 4, 1 << 20):
        try:
            json.loads(data[4:4 + size].decode("utf-8"))
            return data[4 + size:]
        except (UnicodeDecodeError, ValueError):
            pass
    return data


class TensorRTBackend(Backend):
    """options: `precision` ("fp32" | "fp16" | "int8"; int8 expects a QDQ ONNX), `workspace_gb`."""

    name = "tensorrt"
    artifact_format = "onnx"
    device = "gpu"
    accepts = ("engine",)  # an engine built elsewhere (Ultralytics' `yolo export format=engine`) runs as it is
    requires = ("tensorrt", "torch")
    install_hint = "pip install tensorrt (needs an NVIDIA GPU and driver)"
    identity_options = {"precision": "fp32"}

    def __init__(self, artifact: Path, *, threads: int, options: dict[str, Any] | None = None):
        super().__init__(artifact, threads=threads, options=options)
        import tensorrt as trt
        import torch

        if not torch.cuda.is_available():
            raise RuntimeUnavailableError("runtime 'tensorrt' needs an NVIDIA GPU; torch sees no CUDA device here")
        self._trt, self._torch = trt, torch
        self._precision = self.options.get("precision", "fp32")
        logger = trt.Logger(trt.Logger.WARNING)
        if self.artifact.suffix in (".engine", ".plan"):  # imported: its precision was fixed when it was built
            serialized = engine_bytes(self.artifact)
        else:
            engine_path = self.artifact.with_suffix(f".{self._precision}.engine")
            if not engine_path.exists() or engine_path.stat().st_mtime < self.artifact.stat().st_mtime:
                engine_path.write_bytes(self._build(logger))
            serialized = engine_path.read_bytes()
        runtime = trt.Runtime(logger)
        self._engine = runtime.deserialize_cuda_engine(serialized)
        if self._engine is None:
            raise ModelLoadError(f"TensorRT could not deserialize the engine of {self.artifact}")
        self._context = self._engine.create_execution_context()
        self._stream = torch.cuda.Stream()
        self._buffers: dict[str, Any] = {}
        self._outputs: list[str] = []
        self._input = ""
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            shape = tuple(self._engine.get_tensor_shape(name))
            dtype = torch.from_numpy(np.empty(0, dtype=trt.nptype(self._engine.get_tensor_dtype(name)))).dtype
            self._buffers[name] = torch.empty(shape, dtype=dtype, device="cuda")
            self._context.set_tensor_address(name, self._buffers[name].data_ptr())
            if self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self._input = name
            else:
                self._outputs.append(name)

    def _build(self, logger: Any) -> bytes:
        trt = self._trt
        builder = trt.Builder(logger)
        network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(self.artifact.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ModelLoadError(f"TensorRT could not parse {self.artifact}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(self.options.get("workspace_gb", 4)) << 30)
        if self._precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        elif self._precision == "int8":  # explicit quantization from the QDQ nodes in the ONNX
            config.set_flag(trt.BuilderFlag.INT8)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise ModelLoadError(f"TensorRT failed to build an engine from {self.artifact}")
        return bytes(serialized)

    def _run(self) -> None:
        self._context.execute_async_v3(self._stream.cuda_stream)
        self._stream.synchronize()

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        self._buffers[self._input].copy_(self._torch.from_numpy(batch))
        self._run()
        return [self._buffers[name].cpu().numpy() for name in self._outputs]

    def measure(self, batch: np.ndarray, protocol):  # noqa: ANN001 - same signature as Backend.measure
        """Time the engine execution only (input already on the device, as trtexec --noDataTransfers)."""
        from posebench.latency import measure

        self._buffers[self._input].copy_(self._torch.from_numpy(batch))
        return measure(self._run, protocol)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "version": self._trt.__version__, "device": self._torch.cuda.get_device_name(),
                "precision": self._precision}
