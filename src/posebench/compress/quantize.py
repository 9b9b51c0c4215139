"""Int8 post-training quantization (and fp16) of exported pose models, with the pose head kept in float.

- QDQ ONNX through ONNX Runtime's `quantize_static` (per-channel weights, MinMax / Entropy /
  Percentile calibration, optional `reduce_range` for CPUs without VNNI): runs on onnxruntime,
  deepsparse (after stripping opset imports it rejects) and TensorRT (explicit quantization).
- OpenVINO IR through NNCF's `nncf.quantize` (preset MIXED: symmetric weights, asymmetric activations).

Both use the same ignored scope. Measured on yolo11n-pose (coco-pose-mini val+train2017, 640): with
every node quantized the model collapses (pose mAP50-95 0.000); keeping the box/keypoint decode in
float gives 0.560 (ORT) / 0.567 (OpenVINO) against 0.589 fp32; keeping the decode *and* the keypoint
branch (cv4) in float gives 0.589 / 0.601. That last one is the default preset.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from posebench.errors import InvalidInputError, RuntimeNotInstalledError
from posebench.evaluate.preprocess import letterbox, to_batch
from posebench.machine.isa import Int8Choice

# Ignored-scope presets: regexes on node names, "{head}" is the index of the model's last module (the
# Pose head: 22 in YOLOv8, 23 in YOLO11 and YOLO26). Ultralytics exports keep torch module paths as node names.
# YOLO26's Pose26 head exported end to end keeps its one-to-one branch (one2one_cv2 box, one2one_cv3 class,
# one2one_cv4 + one2one_cv4_kpts keypoints) and its NMS-free top-k (TopK, GatherElements); the flow model and
# the sigma convs are training-only and gone from the export. The presets treat one2one_cvN like cvN.
# every op of the head after its prediction convs (the box/keypoint decode, YOLO26's top-k)
DECODE = r"^/model\.{head}/(?!(?:one2one_)?cv(?:[234]|4_kpts)\.).*"
PRESETS: dict[str, tuple[str, ...]] = {
    # decode + keypoint branch (cv4, cv4_kpts) in float
    "yolo-pose-float-head": (r"^/model\.{head}/(?!(?:one2one_)?cv[23]\.).*",),
    # the decode and each keypoint branch's last (1x1) conv in float: the keypoint branch's 3x3 convs run in int8
    "yolo-pose-float-kpt-out": (r"^/model\.{head}/(?!(?:one2one_)?cv[23]\.)"
                                r"(?!(?:one2one_)?cv4\.\d+(?:/(?:one2one_)?cv4\.\d+)?\.[01][/.]).*",),
    # only the decode (and YOLO26's top-k) in float
    "yolo-pose-float-decode": (DECODE,),
    # the whole head and the modules that feed it (the neck's outputs) in float: the most faithful int8, for a
    # deployment judged against the float model (384x640 with full bias correction: fidelity 0.988-0.992 against
    # fp32 640x640 where the default has 0.970-0.982, on every CPU kind; benchmarks/results/realtime-*.md)
    "yolo-pose-float-head-neck": (r"^/model\.{head}/.*", r"^/model\.(?:{head_inputs})/.*"),
    # the coarse pyramid levels in float, the fine level (P3, most of the head's and neck's arithmetic) in int8: the
    # neck modules that emit P4 and P5, the box/class branches at P4 and P5, the keypoint branch at P5 and the
    # decode. Faithful at the default's cost (yolo11n-pose at 384x640, street video, full bias correction: fidelity
    # 0.984-0.993 against fp32 640x640 where the default has 0.970-0.982; streams 1.48x / 1.64x Ultralytics' int8
    # with AVX-512 VNNI (f32) / AVX2 kernels, the default 1.43x / 1.63x; benchmarks/results/realtime-*.md).
    # Quantization error at P4/P5 moves the poses; at P3 it does not (P3 in float is no better than the default).
    "yolo-pose-float-coarse": (DECODE,
                               r"^/model\.{head}/(?:one2one_)?cv[23]\.[12][/.]",
                               r"^/model\.{head}/(?:one2one_)?cv4(?:_kpts)?\.2[/.]",
                               r"^/model\.(?:{coarse_inputs})/"),
    "none": (),  # quantize everything (collapses pose models; for comparison)
}
CALIBRATION_METHODS = ("MinMax", "Entropy", "Percentile")


@dataclass(frozen=True)
class IgnoredScope:
    """Which nodes stay in float: a preset plus user patterns (regex on node names) added or removed."""

    preset: str = "yolo-pose-float-head"
    add: tuple[str, ...] = ()  # extra node-name regexes kept in float
    remove: tuple[str, ...] = ()  # node-name regexes taken back out of the float set

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise InvalidInputError(f"unknown ignored-scope preset '{self.preset}'; known: {', '.join(PRESETS)}")
        for pattern in self.add + self.remove:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise InvalidInputError(f"bad node-name pattern {pattern!r}: {exc}") from exc

    def select(self, names: list[str], feeds: Iterable[int] = ()) -> list[str]:
        """Node names kept in float (matched in their ONNX-export form, see `canonical_node_name`). `feeds`: the
        indices of the modules that feed the head, for presets that name them (`head_inputs`, `coarse_inputs`)."""
        canonical = {n: canonical_node_name(n) for n in names}
        head = head_index(canonical.values())
        patterns = PRESETS[self.preset]
        feeding = sorted(set(feeds))  # Ultralytics necks emit P3, P4, P5 in module order: the first is the finest
        if not feeding and any("{head_inputs}" in p for p in patterns):
            raise InvalidInputError(f"ignored-scope preset '{self.preset}' needs the modules that feed the head "
                                    f"(/model.{head}/), and none was found")
        if len(feeding) < 2 and any("{coarse_inputs}" in p for p in patterns):
            raise InvalidInputError(f"ignored-scope preset '{self.preset}' needs a head fed by several pyramid levels "
                                    f"(P3, P4, P5); /model.{head}/ reads {feeding or 'no module found'}")
        inputs, coarse = "|".join(map(str, feeding)), "|".join(map(str, feeding[1:]))
        keep = [p.format(head=head, head_inputs=inputs, coarse_inputs=coarse) for p in patterns] + list(self.add)
        return [n for n, c in canonical.items() if any(re.match(p, c) for p in keep)
                and not any(re.match(p, c) for p in self.remove)]


def canonical_node_name(name: str) -> str:
    """A node name as the ONNX exporter writes it: an IR converted straight from torch (YOLO26's end-to-end
    models) names nodes `__module.model.23.one2one_cv2.0.conv/aten::...`; that becomes
    `/model.23/one2one_cv2.0.conv/aten::...`, so one set of patterns serves both."""
    return re.sub(r"^__module\.model\.(\d+)[./]", r"/model.\1/", name)


@dataclass(frozen=True)
class PTQConfig:
    """Int8 post-training quantization settings (every field recorded in the artifact's metadata)."""

    calibration_method: str = "MinMax"  # ONNX Runtime: MinMax | Entropy | Percentile (NNCF: its own)
    percentile: float = 99.999  # for Percentile
    images: int = 128  # calibration images / frames
    per_channel: bool = True  # per-output-channel weight scales
    reduce_range: bool = False  # 7-bit weights: avoids u8 x s8 saturation (vpmaddubsw) on CPUs without VNNI
    overflow_fix: str = "first_layer_only"  # NNCF (OpenVINO): "enable" = 7-bit weights everywhere (CPUs without VNNI)
    bias_correction: str = "fast"  # NNCF (OpenVINO): "fast" | "full" (re-runs the model layer by layer; more faithful)
    ignored_scope: IgnoredScope = field(default_factory=IgnoredScope)

    @classmethod
    def for_target(cls, choice: Int8Choice, **settings: Any) -> PTQConfig:
        """Settings for an int8 target (see `posebench.machine.isa.choose_int8`)."""
        return cls(reduce_range=choice.reduce_range, overflow_fix=choice.overflow_fix, **settings)

    def __post_init__(self) -> None:
        if self.calibration_method not in CALIBRATION_METHODS:
            raise InvalidInputError(f"calibration method must be one of {', '.join(CALIBRATION_METHODS)}, "
                                    f"got {self.calibration_method!r}")
        if self.images < 1:
            raise InvalidInputError(f"calibration needs at least 1 image, got {self.images}")
        if self.bias_correction not in ("fast", "full"):
            raise InvalidInputError(f"bias correction must be fast or full, got {self.bias_correction!r}")


def head_index(names: Iterable[str]) -> int:
    """Index of the last `/model.N/` module in an exported graph (the Pose head)."""
    indices = [int(m.group(1)) for n in names if (m := re.match(r"^/model\.(\d+)/", n))]
    if not indices:
        raise InvalidInputError("node names do not look like an Ultralytics export (/model.N/...): the head "
                                "presets cannot be applied; use preset 'none' with your own patterns")
    return max(indices)


def head_inputs(edges: Iterable[tuple[str, str]]) -> list[int]:
    """Indices of the `/model.N/` modules whose nodes feed a node of the head (the last module)."""
    def module(name: str) -> int | None:
        m = re.match(r"^/model\.(\d+)/", canonical_node_name(name))
        return int(m.group(1)) if m else None

    pairs = [(module(a), module(b)) for a, b in edges]
    head = max((i for pair in pairs for i in pair if i is not None), default=None)
    return sorted({src for src, dst in pairs if dst == head and src is not None and src != head})


def onnx_edges(graph: Any) -> list[tuple[str, str]]:
    """(producer, consumer) node names of an ONNX graph."""
    producer = {out: n.name for n in graph.node for out in n.output}
    return [(producer[i], n.name) for n in graph.node for i in n.input if i in producer]


def openvino_edges(model: Any) -> list[tuple[str, str]]:
    """(producer, consumer) op names of an OpenVINO model."""
    return [(port.get_source_output().get_node().get_friendly_name(), op.get_friendly_name())
            for op in model.get_ops() for port in op.inputs()]


def openvino_scope_names(model: Any) -> dict[str, str]:
    """Each op's name -> the name the ignored scope reads it by. OpenVINO's PyTorch frontend names an activation
    after the module object that ran it, and Ultralytics' Conv blocks share one SiLU object, so every SiLU of a
    converted yolo11n-pose is named `model.23.cv4.2.1.act` (the last conv to run it) and a head preset would keep
    all 83 in float: an activation is read as part of the op that feeds it."""
    names = {}
    for op in model.get_ops():
        name = op.get_friendly_name()
        if op.get_type_name() == "Swish":
            name = op.input_value(0).get_node().get_friendly_name() + "/act"
        names[op.get_friendly_name()] = name
    return names


def calibration_batches(frames: Iterable[np.ndarray], imgsz: tuple[int, int], limit: int) -> list[np.ndarray]:
    """Letterboxed NCHW float32 batches, exactly as the validator feeds the model."""
    batches = []
    for image in frames:
        batches.append(to_batch(letterbox(image, imgsz)[0]))
        if len(batches) >= limit:
            break
    if not batches:
        raise InvalidInputError("calibration got no image")
    return batches


def strip_unused_opsets(path: Path) -> None:
    """Keep only opset imports that nodes use, at IR 8: DeepSparse 1.8 rejects e.g. ai.onnx.ml 5."""
    import onnx

    model = onnx.load(str(path))
    used = {n.domain for n in model.graph.node} | {""}
    keep = [o for o in model.opset_import if o.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(keep)
    model.ir_version = min(model.ir_version, 8)
    onnx.save(model, str(path))


def quantized_onnx_nodes(path: Path) -> list[str]:
    """Nodes that run in int8: weights arrive through DequantizeLinear, or the output is re-quantized.

    (A float node right after a quantized one is also fed by a DequantizeLinear, so that alone says nothing.)
    """
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    dq_outputs = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    q_inputs = {n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    skip = ("QuantizeLinear", "DequantizeLinear")
    return [n.name for n in model.graph.node if n.op_type not in skip and (
        (n.op_type in ("Conv", "Gemm", "MatMul") and len(n.input) > 1 and n.input[1] in dq_outputs)
        or any(o in q_inputs for o in n.output))]


def quantize_onnx(fp32: Path, out: Path, batches: list[np.ndarray], config: PTQConfig) -> dict[str, Any]:
    """QDQ int8 ONNX with ONNX Runtime; returns what was quantized and what was kept in float."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, name: str):
            self._it: Iterator = iter([{name: b} for b in batches])

        def get_next(self) -> dict | None:
            return next(self._it, None)

    prepared = out.with_name(out.stem + ".prep.onnx")
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    graph = onnx.load(str(prepared), load_external_data=False).graph
    names = [n.name for n in graph.node]
    floats = config.ignored_scope.select(names, head_inputs(onnx_edges(graph)))
    quantize_static(
        str(prepared), str(out), Reader(graph.input[0].name), quant_format=QuantFormat.QDQ,
        per_channel=config.per_channel, reduce_range=config.reduce_range,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=floats,
        calibrate_method=getattr(CalibrationMethod, config.calibration_method),
        extra_options={"CalibPercentile": config.percentile},
    )
    prepared.unlink(missing_ok=True)
    strip_unused_opsets(out)
    return {"quantized_nodes": quantized_onnx_nodes(out), "float_nodes": floats, "tool": "onnxruntime.quantize_static"}


def quantize_openvino(fp32_xml: Path, out_xml: Path, batches: list[np.ndarray], config: PTQConfig) -> dict[str, Any]:
    """Int8 OpenVINO IR with NNCF (preset MIXED); the same ignored scope as the ONNX path."""
    try:
        import nncf
        import openvino as ov
    except ImportError as exc:
        raise RuntimeNotInstalledError("OpenVINO int8 needs nncf and openvino: pip install nncf openvino") from exc
    import logging

    nncf.set_log_level(logging.WARNING)  # its INFO lines list every node it leaves alone
    model = ov.Core().read_model(str(fp32_xml))
    read_as = openvino_scope_names(model)
    edges = [(read_as.get(a, a), read_as.get(b, b)) for a, b in openvino_edges(model)]
    chosen = set(config.ignored_scope.select(list(read_as.values()), head_inputs(edges)))
    floats = [name for name, read in read_as.items() if read in chosen]
    scope = nncf.IgnoredScope(names=floats, validate=False) if floats else None
    quantized = nncf.quantize(model, nncf.Dataset(batches), preset=nncf.QuantizationPreset.MIXED,
                              ignored_scope=scope, subset_size=len(batches),
                              fast_bias_correction=config.bias_correction == "fast",
                              advanced_parameters=overflow_fix_parameters(config.overflow_fix))
    out_xml.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(out_xml), compress_to_fp16=False)
    return {"quantized_nodes": openvino_quantized_nodes(quantized), "float_nodes": floats,
            "tool": f"nncf {nncf.__version__} (MIXED, {config.bias_correction} bias correction)"}


def overflow_fix_parameters(overflow_fix: str) -> Any:
    """NNCF's advanced parameters with its overflow fix ("first_layer_only", its default, or "enable")."""
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    return AdvancedQuantizationParameters(overflow_fix=OverflowFix(overflow_fix))


def openvino_quantized_nodes(model: Any) -> list[str]:
    """Names of the OpenVINO ops fed by a FakeQuantize (the ones that run in int8)."""
    fq = [op for op in model.get_ops() if op.get_type_name() == "FakeQuantize"]
    return sorted({t.get_node().get_friendly_name() for op in fq for t in op.output(0).get_target_inputs()
                   if t.get_node().get_type_name() != "FakeQuantize"})


def onnx_to_fp16(fp32: Path, out: Path) -> None:
    """fp16 weights and activations, fp32 inputs/outputs (for GPU runtimes)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True)
    onnx.save(model, str(out))
