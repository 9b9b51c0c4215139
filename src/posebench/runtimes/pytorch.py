"""PyTorch eager on CPU: the reference every other runtime is compared with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from posebench.runtimes.base import Backend


class TorchBackend(Backend):
    name = "torch"
    artifact_format = "pt"
    requires = ("torch", "ultralytics")
    install_hint = "pip install torch==2.14.1 torchvision==0.29.1 ultralytics (or `make env`)"
    identity_options = {"flush_denormals": False}  # torch.set_flush_denormal (x86 with SSE3)

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

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        with self._torch.inference_mode():
            out = self._model(self._torch.from_numpy(batch))
        # Ultralytics heads return (decoded, raw dict) in eval mode; the decoded tensor is what
        # every exported format outputs.
        out = out[0] if isinstance(out, (tuple, list)) else out
        return [out.numpy()]

    def info(self) -> dict[str, Any]:
        return {**super().info(), "version": self._torch.__version__, "device": "cpu", "precision": "fp32", "flush_denormals": self._ftz,
                "interop_threads": self._torch.get_num_interop_threads()}
