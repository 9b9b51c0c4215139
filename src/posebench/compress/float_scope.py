"""Which parts of an int8 pose model stay in float, chosen by measurement rather than by hand.

Start from the int8 model with only the decode in float (preset `yolo-pose-float-decode`: fastest, least accurate).
The candidate units are the head's prediction-branch blocks (`cv2.L.J` box, `cv3.L.J` class, `cv4.L.J` keypoints:
branch, pyramid level, position), and with `modules=True` each whole module before the head (`model.N`: backbone
and neck). For each, the int8 model with that unit back in float (its ops read un-quantized
activations, its convolutions the fp32 weights) is scored on labelled images; the units are then added one at a time,
the most accuracy per float MAC first, until the model is within `max_drop` of fp32 on the same images. The named
units become a preset: the decode preset plus one node-name pattern per unit (`ignored_add`), which NNCF then keeps
in float when it quantizes (`posebench.compress.quantize.IgnoredScope`).

Reverting a unit in the quantized IR (rather than re-quantizing per unit) keeps the scan to one NNCF run: a unit's
convolutions are re-wired to the FakeQuantize's input and to the fp32 model's weights, exactly what NNCF's ignored
scope leaves in float. (NNCF's `quantize_with_accuracy_control` does the same kind of search over its quantizer
groups; this one works on named head blocks so its answer is a readable, reusable preset.)
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from posebench.compress.quantize import canonical_node_name, head_index, openvino_scope_names
from posebench.errors import InvalidInputError

# a prediction-branch block of the head, in torch-converted IR names (/model.23/cv4.0.1.conv/...; cv3.0.0.1.conv is
# block cv3.0.0) and ONNX export names (/model.23/cv4.0/cv4.0.1/conv/Conv): branch, level, position
_BRANCH = r"(?:one2one_)?cv(?:[234]|4_kpts)"
_UNIT = re.compile(rf"^/model\.(\d+)/({_BRANCH})\.(\d+)(?:/{_BRANCH}\.\d+)?\.(\d+)[./]")
_CONVS = ("Convolution", "GroupConvolution")


def unit_pattern(head: int, unit: str) -> str:
    """The node-name regex (on canonical names, ONNX or IR) that keeps `unit` in float: a head block (e.g. cv4.2.1
    of head module `head`) or a whole module before the head (`model.16`)."""
    if re.fullmatch(r"model\.\d+", unit):  # a whole module of the backbone or neck
        return rf"^/model\.{unit.split('.')[1]}/"
    branch, level, position = unit.rsplit(".", 2)
    return rf"^/model\.{head}/{branch}\.{level}(?:/{branch}\.{level})?\.{position}[./]"


def head_units(names: Iterable[str]) -> list[str]:
    """The head's prediction-branch blocks found among node names (canonical or OpenVINO's), sorted."""
    canonical = [canonical_node_name(n) for n in names]
    head = head_index(canonical)
    found = {".".join(m.group(2, 3, 4)) for n in canonical if (m := _UNIT.match(n)) and int(m.group(1)) == head}
    return sorted(found, key=lambda u: [int(p) if p.isdigit() else p for p in u.split(".")])


def module_units(names: Iterable[str]) -> list[str]:
    """The modules before the head that hold a convolution (`model.0` ... `model.22`), from node names."""
    canonical = [canonical_node_name(n) for n in names]
    head = head_index(canonical)
    found = {int(m.group(1)) for n in canonical if (m := re.match(r"^/model\.(\d+)/.*[Cc]onv", n))}
    return [f"model.{i}" for i in sorted(found) if i != head]


def _unit_ops(model: Any, unit: str) -> list[Any]:
    """The ops of `unit` in an OpenVINO model (read by the names the ignored scope reads), FakeQuantize and
    constants left out."""
    read_as = openvino_scope_names(model)
    head = head_index(canonical_node_name(n) for n in read_as.values())
    pattern = re.compile(unit_pattern(head, unit))
    return [op for op in model.get_ops() if op.get_type_name() not in ("FakeQuantize", "Constant")
            and pattern.match(canonical_node_name(read_as[op.get_friendly_name()]))]


def _unit_convs(model: Any, unit: str) -> list[Any]:
    """The convolutions of `unit` in an OpenVINO model."""
    return [op for op in _unit_ops(model, unit) if op.get_type_name() in _CONVS]


def unit_macs(model: Any, units: Iterable[str]) -> dict[str, int]:
    """Multiply-accumulates of each unit's convolutions (static shapes), the cost of keeping it in float."""
    macs = {}
    for unit in units:
        # output channels x H x W, times each output's inputs x kernel (the weights' last three dims: Convolution
        # OIHW, GroupConvolution GOIHW)
        macs[unit] = sum(math.prod(list(conv.get_output_shape(0))[1:])
                         * math.prod(list(conv.input_value(1).get_shape())[-3:]) for conv in _unit_convs(model, unit))
    return macs


def bias_port(conv: Any) -> Any:
    """The input port through which a convolution's bias constant is added (conv -> Add(constant)), or None."""
    for target in conv.output(0).get_target_inputs():
        add = target.get_node()
        if add.get_type_name() == "Add":
            other = add.input(1 - target.get_index())
            if other.get_source_output().get_node().get_type_name() == "Constant":
                return other
    return None


def keep_float(quantized: Any, fp32: Any, units: Iterable[str]) -> Any:
    """A copy of the int8 OpenVINO model `quantized` with `units` back in float: their ops take the activations
    before the FakeQuantize and their convolutions the weights and biases of `fp32` (the same model, not quantized:
    NNCF's bias correction moved the int8 model's biases to offset its int8 inputs)."""
    from openvino import opset13 as ops

    model = quantized.clone()
    float_convs = [op for op in fp32.get_ops() if op.get_type_name() in _CONVS]
    float_weights = {op.get_friendly_name(): op.input_value(1) for op in float_convs}
    float_biases = {op.get_friendly_name(): port.get_source_output().get_node().get_data()
                    for op in float_convs if (port := bias_port(op)) is not None}
    for unit in units:
        unit_ops = _unit_ops(model, unit)
        if not any(op.get_type_name() in _CONVS for op in unit_ops):
            raise InvalidInputError(f"no convolution of unit {unit!r} in the model")
        for op in unit_ops:  # every quantized input of the unit's ops (convs, concats, adds) read in float
            for port in op.inputs():
                source = port.get_source_output().get_node()
                if source.get_type_name() == "FakeQuantize":
                    port.replace_source_output(source.input_value(0))
        for conv in (op for op in unit_ops if op.get_type_name() in _CONVS):
            name = conv.get_friendly_name()
            if name not in float_weights:
                raise InvalidInputError(f"{name} is not in the fp32 model: give the fp32 IR the int8 one was made from")
            data = float_weights[name].get_node()
            if data.get_type_name() != "Constant":
                raise InvalidInputError(f"{name}: the fp32 model's weights are not a constant")
            conv.input(1).replace_source_output(ops.constant(data.get_data()).output(0))
            bias, original = bias_port(conv), float_biases.get(name)
            if bias is not None and original is not None:  # NNCF's bias correction moved it for int8 inputs
                bias.replace_source_output(ops.constant(original).output(0))
    model.validate_nodes_and_infer_types()
    return model


@dataclass
class ScopeScan:
    """What the scan measured and which units it named (`chosen`, in the order they were added)."""

    fp32: float  # the score of the float model on the scan images
    int8: float  # of the int8 model with only the decode in float
    gains: dict[str, float]  # unit -> score with it in float minus `int8`
    macs: dict[str, int]  # unit -> its multiply-accumulates
    max_drop: float
    chosen: list[str] = field(default_factory=list)
    path: list[float] = field(default_factory=list)  # the score after each chosen unit was added

    @property
    def reached(self) -> bool:
        """Whether the chosen scope is within `max_drop` of fp32 on the scan images."""
        final = self.path[-1] if self.path else self.int8
        return final >= self.fp32 - self.max_drop

    def patterns(self, head: int) -> list[str]:
        """The chosen units as node-name patterns for `IgnoredScope.add` (a recipe's `ignored_add`)."""
        return [unit_pattern(head, u) for u in self.chosen]

    def to_dict(self) -> dict[str, Any]:
        return {"fp32": self.fp32, "int8": self.int8, "gains": self.gains, "macs": self.macs,
                "max_drop": self.max_drop, "chosen": self.chosen, "path": self.path, "reached": self.reached}


def rank_units(gains: dict[str, float], macs: dict[str, int], *, min_gain: float) -> list[str]:
    """Units worth keeping in float, the most score per float MAC first (ties: the larger gain). A unit whose
    gain is below `min_gain` (scan noise) is left out."""
    useful = [u for u, g in gains.items() if g >= min_gain]
    return sorted(useful, key=lambda u: (-gains[u] / max(macs.get(u, 0), 1), -gains[u], u))


def choose_units(ranked: list[str], score: Callable[[list[str]], float], *, target: float,
                 max_units: int) -> tuple[list[str], list[float]]:
    """Add ranked units one at a time, scoring each cumulative scope, until the score reaches `target` or
    `max_units` are in; a unit whose addition lowers the score is taken back out. Returns (chosen, scores)."""
    chosen: list[str] = []
    path: list[float] = []
    best = -float("inf")
    for unit in ranked:
        if len(chosen) >= max_units or (path and path[-1] >= target):
            break
        value = score(chosen + [unit])
        if value <= best:
            continue
        chosen.append(unit)
        path.append(value)
        best = value
    return chosen, path


def scan_float_scope(quantized: Any, fp32: Any, score: Callable[[Any], float], *, max_drop: float = 0.005,
                     min_gain: float = 0.002, max_units: int = 8, units: list[str] | None = None,
                     modules: bool = False,
                     on_unit: Callable[[str, float], None] | None = None) -> ScopeScan:
    """Scan the head units of an int8 OpenVINO model (`quantized`, made with only the decode in float from `fp32`):
    `score(model)` scores an OpenVINO model on labelled images (higher is better, e.g. pose mAP50-95). `modules`:
    the whole modules before the head are candidates too (`model.N`)."""
    if max_drop < 0 or max_units < 0:
        raise InvalidInputError("max_drop and max_units must be >= 0")
    names = list(openvino_scope_names(quantized).values())
    units = units if units is not None else head_units(names) + (module_units(names) if modules else [])
    if not units:
        raise InvalidInputError("no head unit (cvN.L.J) found: is this an Ultralytics pose model's export?")
    reference, base = score(fp32), score(quantized)
    gains = {}
    for unit in units:
        gains[unit] = score(keep_float(quantized, fp32, [unit])) - base
        if on_unit:
            on_unit(unit, gains[unit])
    macs = unit_macs(quantized, units)
    scan = ScopeScan(fp32=reference, int8=base, gains=gains, macs=macs, max_drop=max_drop)
    if base < reference - max_drop:
        ranked = rank_units(gains, macs, min_gain=min_gain)
        scan.chosen, scan.path = choose_units(ranked, lambda chosen: score(keep_float(quantized, fp32, chosen)),
                                              target=reference - max_drop, max_units=max_units)
    return scan
