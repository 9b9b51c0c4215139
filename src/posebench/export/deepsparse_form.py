"""Int8 ONNX in the form DeepSparse 1.8 accelerates: convolutions as SparseML's ConvInteger blocks.

DeepSparse's ONNX intake (its logs with NM_LOGGING_LEVEL=info, see `posebench.runtimes.deepsparse.engine_coverage`)
refuses the QDQ form that ONNX Runtime's `quantize_static` and NNCF's QAT export write:
- a DequantizeLinear with per-channel scales: "Unsupported DequantizeLinear ..., non-scalar or non-uniform scales";
  an int32 bias DequantizeLinear: "zero point type must be either uint8 or int8";
- even per-tensor QDQ: "FAILED TO COMPILE ... kernel is not constant" (a weight behind a DequantizeLinear is not
  folded), so the whole network runs in DeepSparse's bundled ONNX Runtime fallback ("supports 0% of the network");
- QDQ pairs on convolution outputs, Sigmoid and Mul (ONNX Runtime quantizes those too) with ConvInteger convs
  trip an assertion in the engine's quantize-moving pass (move_quantizes.cpp:515).
What compiles (100 % of the network in one engine subgraph) is the block SparseML's `quantize_torch_qat_export`
wrote for a convolution whose output is not re-quantized:

    x (float) -> QuantizeLinear(s_x, z_x) -> ConvInteger(W_int8, z_x, 0) -> Add(bias_int32) -> Cast(float)
      -> Mul(s_x * s_w) -> y (float)

with every other QuantizeLinear/DequantizeLinear pair folded away (activations between convolutions stay float
in the graph; the engine fuses the block). Per-channel weight scales survive as the Mul's per-channel factor.
`to_deepsparse_int8` rewrites a QDQ ONNX (posebench's PTQ or QAT export) into that form with the same int8 weights
and activation scales; convolutions whose input is not quantized keep float weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from posebench.errors import InvalidInputError


class _Graph:
    """Lookups over one ONNX graph: initializers and Constant nodes as arrays, producers by output name."""

    def __init__(self, model: Any):
        from onnx import numpy_helper

        self.model, self.graph = model, model.graph
        self._to_array = numpy_helper.to_array
        self.inits = {i.name: i for i in self.graph.initializer}
        self.producer = {o: n for n in self.graph.node for o in n.output}

    def constant(self, name: str) -> np.ndarray | None:
        """The value of an initializer or Constant node output, else None."""
        if name in self.inits:
            return self._to_array(self.inits[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant":
            from onnx import helper

            value = helper.get_attribute_value(node.attribute[0])
            return self._to_array(value) if hasattr(value, "data_type") else np.asarray(value)
        return None

    def made_by(self, name: str, op_type: str) -> Any:
        node = self.producer.get(name)
        return node if node is not None and node.op_type == op_type else None

    def add(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        return name


def _weights(g: _Graph, dq: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | None:
    """(int8 weights, scale, zero point, axis) of a weight DequantizeLinear, or None if they are not constants.
    The int8 tensor is an initializer, or a QuantizeLinear of a float initializer (torch's fake-quant export)."""
    scale, zero = g.constant(dq.input[1]), g.constant(dq.input[2]) if len(dq.input) > 2 else np.array(0, np.int8)
    axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
    q = g.constant(dq.input[0])
    if q is None and (quant := g.made_by(dq.input[0], "QuantizeLinear")) is not None:
        w = g.constant(quant.input[0])
        if w is not None and scale is not None:
            shape = [1] * w.ndim
            if np.ndim(scale):
                shape[axis] = -1
            info = np.iinfo(zero.dtype)
            q = np.clip(np.round(w / scale.reshape(shape)) + zero.reshape(shape), info.min, info.max).astype(zero.dtype)
    if q is None or scale is None or zero is None:
        return None
    return q, scale.astype(np.float32), zero, axis if axis < q.ndim else 0


def _dequantized(g: _Graph, name: str) -> np.ndarray | None:
    """A float constant, or the float value of DequantizeLinear(constant)."""
    value = g.constant(name)
    if value is not None:
        return value.astype(np.float32)
    dq = g.made_by(name, "DequantizeLinear")
    if dq is None or (w := _weights(g, dq)) is None:
        return None
    q, scale, zero, axis = w
    shape = [1] * q.ndim
    if np.ndim(scale) and q.ndim:
        shape[axis] = -1
    return ((q.astype(np.int32) - zero.astype(np.int32).reshape(shape)) * scale.reshape(shape)).astype(np.float32)


# ops that move int8 values without changing them: a tensor made by one of these from dequantized tensors that all
# share one scale and zero point lies on that grid (NNCF's QAT export quantizes before a Concat, not after it)
_GRID_KEEPING = {"Concat", "Split", "Slice", "Reshape", "Transpose", "Identity", "MaxPool", "Flatten", "Squeeze",
                 "Unsqueeze"}


def _input_quantization(g: _Graph, name: str, depth: int = 0) -> tuple[str, str] | None:
    """(scale, zero point) names of the int8 grid a float tensor lies on: it is a DequantizeLinear's output, or
    comes from grid-keeping ops over such outputs with equal parameters. None if not quantized."""
    node = g.producer.get(name)
    if node is None or depth > 8:
        return None
    if node.op_type == "DequantizeLinear":
        if len(node.input) < 3 or g.constant(node.input[0]) is not None:  # a weight, not an activation
            return None
        return node.input[1], node.input[2]
    if node.op_type not in _GRID_KEEPING:
        return None
    sources = node.input[:1] if node.op_type != "Concat" else node.input
    found = [_input_quantization(g, source, depth + 1) for source in sources]
    if not found or any(f is None for f in found):
        return None
    values = [(g.constant(s), g.constant(z)) for s, z in found]
    if any(s is None or z is None or np.ndim(s) for s, z in values):
        return None
    first = values[0]
    if all(np.array_equal(s, first[0]) and np.array_equal(z, first[1]) for s, z in values[1:]):
        return found[0]
    return None


def to_deepsparse_int8(qdq: Path, out: Path) -> dict[str, Any]:
    """Rewrite a QDQ int8 ONNX into DeepSparse's ConvInteger form (module doc); returns what was converted."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(qdq))
    g = _Graph(model)
    nodes: list[Any] = []
    converted, float_convs = [], []
    for node in list(g.graph.node):
        wdq = g.made_by(node.input[1], "DequantizeLinear") if node.op_type == "Conv" else None
        weights = _weights(g, wdq) if wdq is not None else None
        if weights is None:
            nodes.append(node)
            continue
        q, w_scale, w_zero, axis = weights
        name = node.name or node.output[0]
        x_params = _input_quantization(g, node.input[0])
        x_scale, x_zero = (g.constant(x_params[0]), g.constant(x_params[1])) if x_params else (None, None)
        bias = _dequantized(g, node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if x_params is None or x_scale is None or x_zero is None or np.ndim(x_scale) or np.any(w_zero) or (
                np.ndim(w_scale) and axis != 0) or (len(node.input) > 2 and node.input[2] and bias is None):
            # no quantized input (or a form this rewrite does not handle): a float convolution, weights dequantized
            node.input[1] = g.add(f"{name}.weight_float", _dequantized(g, node.input[1]))
            if bias is not None:
                node.input[2] = g.add(f"{name}.bias_float", bias)
            nodes.append(node)
            float_convs.append(name)
            continue
        rescale = (np.float32(x_scale) * w_scale).astype(np.float32)
        if rescale.ndim:
            rescale = rescale.reshape(1, -1, 1, 1)
        x_q = f"{name}.input_quantized"
        nodes.append(helper.make_node("QuantizeLinear", [node.input[0], *x_params], [x_q], f"{name}_input_quant"))
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        inputs = [x_q, g.add(f"{name}.weight_quantized", q), x_params[1],
                  g.add(f"{name}.weight_zero_point", np.array(0, q.dtype))]
        nodes.append(helper.make_node("ConvInteger", inputs, [f"{name}.int32"], f"{name}_quant", **attrs))
        acc = f"{name}.int32"
        if bias is not None:
            bias_q = np.round(bias / rescale.reshape(-1)).astype(np.int32).reshape(1, -1, 1, 1)
            nodes.append(helper.make_node("Add", [acc, g.add(f"{name}.bias_quantized", bias_q)], [f"{name}.int32_bias"],
                                          f"{name}_bias_add_quant"))
            acc = f"{name}.int32_bias"
        nodes.append(helper.make_node("Cast", [acc], [f"{name}.float"], f"{name}_cast", to=TensorProto.FLOAT))
        nodes.append(helper.make_node("Mul", [f"{name}.float", g.add(f"{name}.rescale", rescale)], [node.output[0]],
                                      f"{name}_rescale_mul"))
        converted.append(name)
    if not converted:
        raise InvalidInputError(f"{qdq}: no quantized convolution (DequantizeLinear weights and input) to convert; "
                                "is it an int8 QDQ ONNX?")
    del g.graph.node[:]
    g.graph.node.extend(nodes)
    folded = _fold_remaining_qdq(g)
    _drop_unused(g.graph)
    onnx.checker.check_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return {"form": "deepsparse", "tool": "posebench ConvInteger rewrite (SparseML's QAT export form)",
            "convinteger_convs": len(converted), "float_convs": float_convs, "folded_qdq": folded}


def _fold_remaining_qdq(g: _Graph) -> int:
    """Every DequantizeLinear left: of a QuantizeLinear -> its float input; of a constant -> a float constant."""
    producer = {o: n for n in g.graph.node for o in n.output}
    alias: dict[str, str] = {}
    for node in g.graph.node:
        if node.op_type != "DequantizeLinear":
            continue
        source = producer.get(node.input[0])
        if source is not None and source.op_type == "QuantizeLinear":
            alias[node.output[0]] = source.input[0]
        elif (value := _dequantized(g, node.output[0])) is not None:
            alias[node.output[0]] = g.add(f"{node.output[0]}.float", value)
    outputs = {o.name for o in g.graph.output}
    for name in alias:
        if name in outputs:
            raise InvalidInputError(f"graph output {name} is a DequantizeLinear; cannot fold it")
    for node in g.graph.node:
        for i, name in enumerate(node.input):
            while name in alias:
                name = alias[name]
            node.input[i] = name
    return len(alias)


def _drop_unused(graph: Any) -> None:
    """Remove nodes whose outputs nothing reads, then unread initializers."""
    while True:
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        keep = [n for n in graph.node if any(o in used for o in n.output)]
        if len(keep) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(keep)
    inits = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)
