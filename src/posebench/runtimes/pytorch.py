"""PyTorch eager: on CPU the reference every other runtime is compared with; on an NVIDIA GPU (option
`device=cuda`, with `precision=fp16` and `cuda_graphs=true` as options) the plainest GPU row.

On CUDA, `measure` keeps the input on the device (as TensorRT's row does) and times every call with CUDA
events inside the same protocol (warm-up, iterations, minimum seconds): the statistics are device time
per call; the host's wall time per call (synchronised) is kept beside them in `info()`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from posebench.errors import InvalidInputError, RuntimeNotInstalledError
from posebench.latency import LatencyProtocol, LatencyStats
from posebench.runtimes.base import Backend


class TorchBackend(Backend):
    name = "torch"
    artifact_format = "pt"
    ultralytics_predict = True
    requires = ("torch", "ultralytics")
    install_hint = "pip install torch==2.14.1 torchvision==0.29.1 ultralytics (or `make env`)"
    # flush_denormals: torch.set_flush_denormal (x86 with SSE3); device / precision / cuda_graphs: the GPU rows
    identity_options = {"flush_denormals": False, "device": "cpu", "precision": "fp32", "cuda_graphs": False}

    def __init__(self, artifact: Path, *, threads: int, options: dict[str, Any] | None = None):
        super().__init__(artifact, threads=threads, options=options)
        import torch

        from posebench.ultralytics_adapter import load_torch_model

        torch.set_num_threads(self.threads)
        try:  # only settable before the first parallel region of the process
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
        self._torch = torch
        self._ftz = bool(self.options.get("flush_denormals", False)) and torch.set_flush_denormal(True)
        from posebench.export import meta_path, read_metadata

        # the head the artifact store chose for this checkpoint (YOLO26: end2end unless head=one2many); a .pt
        # without posebench metadata runs its one-to-one head where it has one, as posebench exports it
        meta = read_metadata(self.artifact) if meta_path(self.artifact).is_file() else {}
        self._model = load_torch_model(self.artifact, end2end=meta.get("end2end"))
        self._device = str(self.options.get("device", "cpu"))
        self._precision = str(self.options.get("precision", "fp32"))
        self._graphs = bool(self.options.get("cuda_graphs", False))
        if self._device not in ("cpu", "cuda") or self._precision not in ("fp32", "fp16"):
            raise InvalidInputError(f"torch options: device cpu|cuda and precision fp32|fp16, got device="
                                    f"{self._device}, precision={self._precision}")
        if self._device == "cpu" and (self._precision != "fp32" or self._graphs):
            raise InvalidInputError("torch on the CPU runs fp32 without CUDA graphs: fp16 and cuda_graphs need "
                                    "device=cuda")
        if self._device == "cuda":
            if not torch.cuda.is_available():
                raise RuntimeNotInstalledError("torch with device=cuda needs an NVIDIA GPU and a CUDA build of torch "
                                               "(torch.cuda.is_available() is False here)")
            self._model = self._model.to("cuda")
            if self._precision == "fp16":
                self._model = self._model.half()
        self._host_ms: dict[str, float] = {}

    def _dtype(self) -> Any:
        return self._torch.float16 if self._precision == "fp16" else self._torch.float32

    def _forward(self, x: Any) -> Any:
        out = self._model(x)
        # Ultralytics heads return (decoded, raw dict) in eval mode; the decoded tensor is what
        # every exported format outputs.
        return out[0] if isinstance(out, (tuple, list)) else out

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        with self._torch.inference_mode():
            x = self._torch.from_numpy(batch)
            if self._device == "cuda":
                x = x.to("cuda", non_blocking=False).to(self._dtype())
            out = self._forward(x)
        return [out.float().cpu().numpy()]

    def measure(self, batch: np.ndarray, protocol: LatencyProtocol) -> LatencyStats:
        """CPU: the protocol around `infer`. CUDA: input on the device, each call timed by CUDA events."""
        if self._device == "cpu":
            return super().measure(batch, protocol)
        import time

        from posebench.latency import measure, summarize

        torch = self._torch
        x = torch.from_numpy(batch).to("cuda").to(self._dtype())
        events: list[tuple[Any, Any]] = []
        with torch.inference_mode():
            if self._graphs:  # capture one forward on a side stream, then replay it (static input and output)
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    for _ in range(3):
                        self._forward(x)
                torch.cuda.current_stream().wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    self._forward(x)
                run = graph.replay
            else:
                def run() -> None:
                    self._forward(x)

            def timed_call() -> None:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                run()
                end.record()
                end.synchronize()
                events.append((start, end))

            wall = time.perf_counter()
            host = measure(timed_call, protocol)
            wall = time.perf_counter() - wall
        warm = host.warmup_count
        device_ns = np.array([int(s.elapsed_time(e) * 1e6) for s, e in events[warm:]], dtype=np.int64)
        self._host_ms = {"host_mean_ms": host.mean_ms, "host_p50_ms": host.p50_ms, "host_p99_ms": host.p99_ms}
        return summarize(device_ns, timed_seconds=wall, warmup_count=warm, capped=host.capped)

    def info(self) -> dict[str, Any]:
        base = {**super().info(), "version": self._torch.__version__, "precision": self._precision,
                "flush_denormals": self._ftz, "interop_threads": self._torch.get_num_interop_threads()}
        if self._device == "cpu":
            return {**base, "device": "cpu"}
        return {**base, "device": "gpu", "gpu": self._torch.cuda.get_device_name(), "cuda_graphs": self._graphs,
                "timing": "CUDA events per call (device time); host wall time beside it", **self._host_ms}
