"""Int8 quantization-aware training (QAT) with NNCF for PyTorch, fine-tuned through Ultralytics' trainer.

Why NNCF: it is maintained (3.4, 2026), CPU-first, Apache-2.0, already our OpenVINO PTQ tool, and its QAT is
"`nncf.quantize` a torch model, then train it as usual" with learnable ranges. Ultralytics 8.4's own
`train(quantize=8)` uses NVIDIA ModelOpt, a GPU/TensorRT-oriented package not in this environment.

How it fits Ultralytics (no patches, only its public seams):
1. BatchNorm is folded into the convolutions first (`model.fuse()`), so the int8 weight ranges learned in
   training are the ones exported (no rescaling at export) and no BatchNorm sits between a quantized conv
   and its output in the ONNX graph.
2. `nncf.quantize` inserts fake-quantizers (symmetric per-channel weights, asymmetric activations: preset
   MIXED) and calibrates their initial ranges. The box/keypoint decode never gets a quantizer (every op that
   does not lead to the head's prediction convolutions stays float, like the PTQ presets), and the preset's
   convolutions (default: the keypoint branch cv4) stay float too.
3. A `PoseTrainer` subclass hands the prepared model to the trainer (`get_model`) and saves plain float
   checkpoints (`save_model`): NNCF's quantizers do not pickle. The trainer's EMA copy keeps the quantizers.
4. Export: NNCF quantizers emit ONNX QuantizeLinear/DequantizeLinear pairs when traced. The export is
   checked against the fake-quantized torch model before it is accepted.

NNCF names operations by module call path and a per-name call counter. Two consequences handled here:
Ultralytics calls its layers from a loop, so names lose the `model.N` prefix (the ignored scope is built
from the graph's weight nodes instead of from names), and under `torch.jit` tracing shape arithmetic
(`H * W`) becomes tensor ops that would shift the counters (they are not counted while tracing).
Single process only (CPU or one GPU): the trainer class carries the model, so DDP workers cannot rebuild it.
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posebench.compress.quantize import IgnoredScope, quantized_onnx_nodes
from posebench.errors import InvalidInputError, RuntimeNotInstalledError
from posebench.ultralytics_adapter import (fold_batchnorm, has_one2one_head, keep_one_head, pose_trainer_class,
                                           set_onnx_export_mode)

# NNCF compiles its torch extension on first use and gives up after 60 s: a busy 2-core machine can take longer
# (seen: the QAT tests erred with multiprocessing.TimeoutError while another job trained). The user's value wins.
os.environ.setdefault("NNCF_EXTENSION_LOAD_TIMEOUT", "900")

HOOKS_ATTRIBUTE = "__nncf_hooks"  # nncf.torch.function_hook.wrapper.ATR_HOOK_STORAGE


def _nncf():  # noqa: ANN202 - the module
    try:
        import nncf
    except ImportError as exc:
        raise RuntimeNotInstalledError("QAT needs NNCF: pip install nncf") from exc
    nncf.set_log_level(logging.WARNING)
    return nncf


def onnx_style_names(model: torch.nn.Module, example: torch.Tensor, paths: list[str], op: str = "Conv") -> dict[str, str]:
    """The node names torch's ONNX exporter gives these modules' ops, e.g. model.23.cv4.2.0.conv ->
    /model.23/cv4.2/cv4.2.0/conv/Conv: one scope per module actually called, named relative to the nearest called
    ancestor that is not an nn.Sequential (Ultralytics iterates `model.model` instead of calling it)."""
    called: set[str] = set()
    handles = [m.register_forward_pre_hook(lambda _m, _x, name=name: called.add(name))
               for name, m in model.named_modules() if name]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    modules = dict(model.named_modules())
    names = {}
    for path in paths:
        parts = path.split(".")
        scopes, anchor = [], ""
        for prefix in (".".join(parts[:i]) for i in range(1, len(parts) + 1)):
            if prefix not in called:
                continue
            scopes.append(prefix[len(anchor) + 1:] if anchor else prefix)
            if not isinstance(modules[prefix], torch.nn.Sequential):
                anchor = prefix
        names[path] = "/" + "/".join(scopes) + f"/{op}"
    return names


def _conv_ops(graph: Any) -> dict[str, str]:
    """NNCF graph: operation name -> module path of the weight it convolves with."""
    ops = {}
    for node in graph.get_all_nodes():
        if node.node_name.endswith(".weight"):
            for edge in graph.get_output_edges(node):
                if "conv" in edge.to_node.node_name.rsplit("/", 2)[-2]:
                    ops[edge.to_node.node_name] = node.node_name[: -len(".weight")]
    return ops


def _float_ops(model: torch.nn.Module, graph: Any, scope: IgnoredScope,
               example: torch.Tensor) -> tuple[list[str], list[str]]:
    """NNCF op names kept in float, and the ONNX names of the convolutions among them."""
    head = len(model.model) - 1
    convs = _conv_ops(graph)
    # the head's prediction convs are its bare Conv2d layers (not inside a Conv block); what follows them is decode
    prediction = [op for op, path in convs.items() if path.startswith(f"model.{head}.") and not path.endswith(".conv")
                  and ".dfl" not in path]
    if not prediction:
        raise InvalidInputError("QAT: the model's last module has no prediction convolutions; only Ultralytics "
                                "pose/detect heads are supported")
    feeds_prediction: set[str] = set()
    stack = [graph.get_node_by_name(op) for op in prediction]
    while stack:
        node = stack.pop()
        if node.node_name not in feeds_prediction:
            feeds_prediction.add(node.node_name)
            stack.extend(edge.from_node for edge in graph.get_input_edges(node))
    decode = [n.node_name for n in graph.get_all_nodes()
              if n.node_name not in feeds_prediction and not n.node_name.endswith((".weight", ".bias"))]
    exported = onnx_style_names(model, example, list(convs.values()))
    onnx_names = {op: exported[path] for op, path in convs.items() if op in feeds_prediction}
    feeds = getattr(model.model[-1], "f", [])  # the modules the head reads (Ultralytics' `from` indices)
    kept = set(scope.select(list(onnx_names.values()), [i for i in feeds if i >= 0]))
    float_convs = [op for op, name in onnx_names.items() if name in kept]
    return sorted(set(decode) | set(float_convs)), sorted(kept)


def _nncf_forward_classes():  # noqa: ANN202 - two classes, built lazily (nncf is optional)
    from nncf.torch.function_hook.hook_executor_mode import FunctionHookMode
    from nncf.torch.function_hook.wrapper import ForwardWithHooks, get_hook_storage

    class TrainingForward(ForwardWithHooks):
        """Ultralytics calls `model(batch_dict)` -> loss -> `model.forward(images)`: hook the inner call only
        (NNCF's hook mode cannot be entered twice for one model)."""

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            if args and isinstance(args[0], dict):
                return type(self.model).forward(self.model, *args, **kwargs)
            return super().__call__(*args, **kwargs)

    class TracingMode(FunctionHookMode):
        """Under torch.jit tracing, shape arithmetic on 0-d integer tensors is not an op of the eager graph."""

        def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
            if torch.jit.is_tracing():
                tensors = [a for a in (*args, *(kwargs or {}).values()) if isinstance(a, torch.Tensor)]
                if tensors and all(t.dim() == 0 and not t.is_floating_point() for t in tensors):
                    return func(*args, **(kwargs or {}))
            return super().__torch_function__(func, types, args, kwargs)

    class ExportForward(ForwardWithHooks):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with TracingMode(model=self.model, hook_storage=get_hook_storage(self.model)) as ctx:
                args, kwargs = ctx.process_model_inputs(args, kwargs)
                return ctx.process_model_outputs(self.orig_forward(*args, **kwargs))

    return TrainingForward, ExportForward


def _swap_forward(model: torch.nn.Module, cls: type) -> None:
    wrapped = model.forward
    model.__dict__.pop("forward")
    model.forward = cls(model, orig_forward=wrapped.orig_forward)


def prepare_qat(model: torch.nn.Module, batches: list[np.ndarray], scope: IgnoredScope) -> tuple[torch.nn.Module, dict]:
    """Fold BatchNorm, insert NNCF fake-quantizers calibrated on `batches`; returns the model and what stays float."""
    nncf = _nncf()
    from nncf.torch.function_hook.nncf_graph.nncf_graph_builder import build_nncf_graph
    from nncf.torch.function_hook.wrapper import wrap_model

    if scope.preset == "none":
        raise InvalidInputError("QAT keeps the box/keypoint decode in float always: use preset "
                                "yolo-pose-float-decode (decode only) or yolo-pose-float-head")
    model = fold_batchnorm(model.float().eval())  # the head keeps both branches: an end-to-end head trains both
    tensors = [torch.from_numpy(b) for b in batches]
    graph = build_nncf_graph(wrap_model(copy.deepcopy(model)), tensors[0])
    ignored, float_convs = _float_ops(model, graph, scope, tensors[0])
    quantized = nncf.quantize(model, nncf.Dataset(tensors), preset=nncf.QuantizationPreset.MIXED,
                              subset_size=len(tensors), ignored_scope=nncf.IgnoredScope(names=ignored, validate=False))
    _swap_forward(quantized, _nncf_forward_classes()[0])
    for p in quantized.parameters():  # fuse() froze the folded convs; NNCF ranges are trainable too
        if p.is_floating_point():
            p.requires_grad_(True)
    return quantized, {"float_convs": float_convs, "quantizers": count_quantizers(quantized),
                       "tool": f"nncf {nncf.__version__} QAT (MIXED)"}


def count_quantizers(model: torch.nn.Module) -> int:
    from nncf.torch.function_hook.wrapper import get_hook_storage
    from nncf.torch.quantization.layers import BaseQuantizer

    return sum(isinstance(m, BaseQuantizer) for _, m in get_hook_storage(model).named_hooks())


def without_quantizers(model: torch.nn.Module) -> torch.nn.Module:
    """A plain copy (same float weights, no hooks): what Ultralytics can pickle and reload."""
    plain = copy.deepcopy(model)
    plain.__dict__.pop("forward", None)
    plain.__dict__.pop("_replicate_for_data_parallel", None)
    if hasattr(plain, HOOKS_ATTRIBUTE):
        delattr(plain, HOOKS_ATTRIBUTE)
    return plain


def qat_trainer(model: torch.nn.Module) -> type:
    """A PoseTrainer class that trains `model` (already fake-quantized) and saves plain float checkpoints."""
    class QATPoseTrainer(pose_trainer_class()):
        def get_model(self, cfg: Any = None, weights: Any = None, verbose: bool = True) -> torch.nn.Module:
            if self.world_size > 1:
                raise InvalidInputError("QAT runs in one process: give one device")
            return model

        def save_model(self) -> bool:
            live = self.ema.ema
            self.ema.ema = without_quantizers(live)
            try:
                return super().save_model()
            finally:
                self.ema.ema = live

    return QATPoseTrainer


def _set_export_mode(model: torch.nn.Module) -> None:
    from nncf.torch.function_hook.wrapper import get_hook_storage
    from nncf.torch.quantization.layers import BaseQuantizer, QuantizerExportMode

    for _, module in get_hook_storage(model).named_hooks():
        if isinstance(module, BaseQuantizer):
            module.set_export_mode(QuantizerExportMode.ONNX_QUANTIZE_DEQUANTIZE_PAIRS)
    set_onnx_export_mode(model)


def _weights_onto_grid(model: torch.nn.Module, example: torch.Tensor) -> int:
    """Replace each quantized conv weight by its fake-quantized value (as NNCF's own strip does).

    NNCF's narrow-range weights clamp at -127 steps; ONNX QuantizeLinear clamps at -128: a weight that trained
    past its range would export one step off. On-grid weights quantize identically everywhere."""
    from nncf.torch.function_hook.hook_storage import decode_hook_name
    from nncf.torch.function_hook.nncf_graph.nncf_graph_builder import build_nncf_graph
    from nncf.torch.function_hook.wrapper import get_hook_storage, wrap_model
    from nncf.torch.quantization.layers import BaseQuantizer

    convs = _conv_ops(build_nncf_graph(wrap_model(without_quantizers(model)), example))  # same op names, no hooks
    modules = dict(model.named_modules())
    moved = 0
    for name, quantizer in get_hook_storage(model).named_hooks(remove_duplicate=False):
        kind, op, port = decode_hook_name(name)
        if isinstance(quantizer, BaseQuantizer) and kind == "pre_hooks" and port == 1 and op in convs:
            weight = modules[convs[op]].weight
            with torch.no_grad():
                weight.copy_(quantizer(weight))
            moved += 1
    return moved


def fold_weight_quantizers(path: Path) -> int:
    """Store quantized weights as int8 initializers (QuantizeLinear(float weight) -> int8 constant), as ONNX
    Runtime's QDQ format does: a quarter of the size, and the int8 values (and their zeros) are in the file."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    constants = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in graph.node
                 if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"}
    folded, drop = 0, []
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] not in inits:
            continue
        weight = numpy_helper.to_array(inits[node.input[0]])
        scale, zero = constants[node.input[1]], constants[node.input[2]]
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * weight.ndim
        if scale.ndim:
            shape[axis] = -1
        info = np.iinfo(zero.dtype)
        q = np.clip(np.rint(weight / scale.reshape(shape)) + zero.reshape(shape).astype(np.int32), info.min, info.max)
        name = node.input[0] + "_quantized"
        graph.initializer.append(numpy_helper.from_array(q.astype(zero.dtype), name))
        for consumer in graph.node:
            consumer.input[:] = [name if i == node.output[0] else i for i in consumer.input]
        drop.append(node)
        folded += 1
    for node in drop:
        graph.node.remove(node)
    used = {i for n in graph.node for i in n.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)
    onnx.save(model, str(path))
    return folded


def export_qat_onnx(model: torch.nn.Module, out: Path, check: np.ndarray, *, end2end: bool = False) -> dict[str, Any]:
    """QDQ ONNX (opset 17, IR 8) of a fake-quantized model; refuses an export that does not reproduce it.
    `end2end`: export the one-to-one (NMS-free) head of a YOLO26-style model, else its one-to-many head.

    Checks: one QuantizeLinear/DequantizeLinear pair per quantizer call, every QuantizeLinear on a float tensor,
    and ONNX Runtime's output on `check` (one letterboxed NCHW image) no farther from the fake-quantized torch
    output than twice the float model is. (Bit-exactness is not possible: two frameworks accumulate convolutions
    in different orders, a value on a rounding boundary lands one int8 step apart, and such flips propagate;
    measured layer by layer they stay at 1-3 steps while every quantizer sits where NNCF put it.)
    An end-to-end head is checked before its top-k (a second export without it): the top-k order of near-tied
    scores is each framework's own, so its output is compared by its sorted scores only.
    """
    imgsz = (int(check.shape[2]), int(check.shape[3]))
    model = copy.deepcopy(model).float().eval()
    if has_one2one_head(model) or end2end:
        keep_one_head(model, end2end=end2end,
                      max_det=min(300, sum(int(imgsz[0] / s) * int(imgsz[1] / s) for s in model.stride.tolist())))
    x = torch.from_numpy(check)
    _weights_onto_grid(model, x)
    if end2end:
        ranked = copy.deepcopy(model)
        ranked.model[-1].postprocess = lambda y: y.permute(0, 2, 1)  # the one-to-one predictions, every anchor
        checked = _export_checked(ranked, x, out.with_suffix(".check.onnx"))
        out.with_suffix(".check.onnx").unlink()
        final = _export_checked(model, x, out, by_score=True)
        if final["qdq_pairs"] != checked["qdq_pairs"]:
            raise RuntimeError("the end-to-end QDQ export lost quantizers to its top-k: please report this")
        check_result = {**checked, "top_k": {k: final[k] for k in ("median_abs_onnx_vs_torch",
                                                                    "median_abs_float_vs_torch")}}
    else:
        check_result = _export_checked(model, x, out)
    return {"quantized_nodes": quantized_onnx_nodes(out), "export_check": check_result}


def _export_checked(model: torch.nn.Module, x: torch.Tensor, out: Path, *, by_score: bool = False) -> dict[str, Any]:
    """Export `model` (fake-quantized, weights on their int8 grid) to QDQ ONNX with int8 weight initializers and
    compare ONNX Runtime with torch on `x` (all values, or `by_score`: the sorted score column of a top-k output)."""
    import onnx
    import onnxruntime as ort
    from nncf.torch.function_hook.wrapper import get_hook_storage
    from nncf.torch.quantization.layers import BaseQuantizer

    from posebench.compress.quantize import strip_unused_opsets

    quantizers = {id(m): m for _, m in get_hook_storage(model).named_hooks() if isinstance(m, BaseQuantizer)}
    counted: list[int] = []
    handles = [m.register_forward_hook(lambda *_: counted.append(1)) for m in quantizers.values()]
    try:
        with torch.no_grad():
            fake_quantized = model(x)[0].numpy()
    finally:
        for handle in handles:
            handle.remove()
    calls = len(counted)  # quantizers on the exported head only (a YOLO26 model trains two)
    with torch.no_grad():
        plain = without_quantizers(model)(x)[0].numpy()
    exported = copy.deepcopy(model)
    _swap_forward(exported, _nncf_forward_classes()[1])
    _set_export_mode(exported)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(exported, x, str(out), opset_version=17, input_names=["images"], output_names=["output0"],
                      dynamo=False)
    strip_unused_opsets(out)
    pairs = sum(n.op_type == "QuantizeLinear" for n in onnx.load(str(out)).graph.node)
    fold_weight_quantizers(out)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])  # fails on a non-float Q input
    onnx_out = session.run(None, {"images": x.numpy()})[0]
    if onnx_out.shape != fake_quantized.shape:
        raise RuntimeError(f"the QDQ export's output is {onnx_out.shape}, the model's {fake_quantized.shape}: "
                           "please report this with the model")
    if by_score:
        onnx_out, fake_quantized, plain = (np.sort(a[..., 4].ravel()) for a in (onnx_out, fake_quantized, plain))
    mismatch = float(np.median(np.abs(onnx_out - fake_quantized)))
    quant_effect = float(np.median(np.abs(plain - fake_quantized)))
    if pairs != calls or not mismatch <= 2 * quant_effect + 1e-3:
        raise RuntimeError(f"the QDQ export does not reproduce the fake-quantized model ({pairs} QDQ pairs for "
                           f"{calls} quantizer calls; median |onnx - torch| {mismatch:.4g} vs quantization effect "
                           f"{quant_effect:.4g}): please report this with the model")
    return {"qdq_pairs": pairs, "median_abs_onnx_vs_torch": mismatch, "median_abs_float_vs_torch": quant_effect}
