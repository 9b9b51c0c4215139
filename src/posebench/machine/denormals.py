"""Denormal (subnormal) floats in a model: in its weights and in the activations of one inference.

x86 cores handle a float32 below 1.18e-38 through a slow microcode assist (tens to hundreds of cycles per
operation) unless flush-to-zero / denormals-are-zero is on, so a model whose activations are full of them runs
slower for a reason that has nothing to do with its FLOPs. A census runs the ONNX model once on ONNX Runtime
with every intermediate float tensor exposed and counts the subnormal values.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

TINY = np.finfo(np.float32).tiny  # smallest normal float32


def _subnormal(a: np.ndarray) -> int:
    a = np.abs(a[np.isfinite(a)])
    return int(np.count_nonzero((a > 0) & (a < TINY)))


def census(onnx_path: str | os.PathLike, batch: np.ndarray) -> dict[str, Any]:
    """Subnormal counts of the weights and of every float activation on `batch` (fractions of all values)."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    weights = [numpy_helper.to_array(i) for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT]
    w_sub, w_total = sum(_subnormal(w) for w in weights), sum(w.size for w in weights)
    inferred = onnx.shape_inference.infer_shapes(model)
    known = {o.name for o in model.graph.output}
    for vi in inferred.graph.value_info:
        if vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT and vi.name not in known:
            model.graph.output.append(vi)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor as exported
    so.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: batch})
    a_sub = sum(_subnormal(o) for o in outputs if o.dtype == np.float32)
    a_total = sum(o.size for o in outputs if o.dtype == np.float32)
    worst = sorted(((_subnormal(o) / max(o.size, 1), name.name) for o, name in zip(outputs, session.get_outputs())
                    if o.dtype == np.float32), reverse=True)[:3]
    return {"weights_subnormal": w_sub, "weights_fraction": w_sub / max(w_total, 1), "activations_subnormal": a_sub,
            "activations_fraction": a_sub / max(a_total, 1), "tensors": len(outputs),
            "worst": [{"tensor": n, "fraction": f} for f, n in worst if f > 0]}


def has_denormals(result: dict[str, Any] | None, threshold: float = 1e-4) -> bool:
    """Whether a census found enough subnormals to matter for speed (1 in 10,000 values by default)."""
    return bool(result) and (result["activations_fraction"] > threshold or result["weights_fraction"] > threshold)
