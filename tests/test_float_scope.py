"""The int8 float-scope scan: head units named in both node-name forms, a unit reverted to float exactly (its
convolutions read un-quantized activations and the fp32 weights, nothing else moves), the ranking and the greedy
choice, and a preset that keeps in float exactly the units its scan named."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import yaml
from conftest import REPO

from posebench.compress.float_scope import (
    bias_port,
    choose_units,
    head_units,
    keep_float,
    module_units,
    rank_units,
    scan_float_scope,
    unit_pattern,
)
from posebench.compress.quantize import IgnoredScope, PTQConfig, canonical_node_name, head_index, quantize_openvino

SIZE = (64, 64)


def test_units_and_patterns_read_onnx_and_ir_names():
    onnx = ["/model.23/cv2.0/cv2.0.0/conv/Conv", "/model.23/cv3.0/cv3.0.0/cv3.0.0.0/conv/Conv",
            "/model.23/cv4.2/cv4.2.1/conv/Conv", "/model.23/cv4.2/cv4.2.2/Conv", "/model.22/cv1/conv/Conv"]
    ir = ["__module.model.23.cv4.2.1.conv/aten::_convolution/Convolution",
          "__module.model.23.cv3.0.0.1.conv/aten::_convolution/Convolution",
          "__module.model.23.cv4.2.2/aten::_convolution/Convolution"]
    assert head_units(onnx) == ["cv2.0.0", "cv3.0.0", "cv4.2.1", "cv4.2.2"]
    assert head_units(ir) == ["cv3.0.0", "cv4.2.1", "cv4.2.2"]
    matched = lambda unit: [n for n in onnx + ir if re.match(unit_pattern(23, unit), canonical_node_name(n))]
    assert matched("cv4.2.1") == [onnx[2], ir[0]]
    assert matched("cv3.0.0") == [onnx[1], ir[1]]
    assert matched("cv4.2.2") == [onnx[3], ir[2]]  # not cv4.2.1, not cv4.2.20
    assert module_units(onnx + ["/model.1/conv/Conv", "/model.16/m.0/cv1/conv/Conv"]) == ["model.1", "model.16",
                                                                                            "model.22"]
    assert [n for n in ["/model.1/conv/Conv", "/model.16/cv1/conv/Conv"] if re.match(unit_pattern(23, "model.1"), n)] \
        == ["/model.1/conv/Conv"]


def test_rank_prefers_accuracy_per_float_mac_and_drops_noise():
    gains = {"big": 0.010, "cheap": 0.004, "noise": 0.001, "worse": -0.004}
    macs = {"big": 1000, "cheap": 10, "noise": 1, "worse": 1}
    assert rank_units(gains, macs, min_gain=0.002) == ["cheap", "big"]


def test_choose_stops_at_the_target_and_skips_a_unit_that_hurts():
    table = {(): 0.50, ("a",): 0.505, ("a", "b"): 0.503, ("a", "c"): 0.509, ("a", "c", "d"): 0.511}
    score = lambda chosen: table[tuple(chosen)]
    assert choose_units(["a", "b", "c", "d"], score, target=0.508, max_units=5) == (["a", "c"], [0.505, 0.509])
    assert choose_units(["a", "b", "c", "d"], score, target=0.6, max_units=5) == (["a", "c", "d"],
                                                                                [0.505, 0.509, 0.511])
    assert choose_units(["a", "c"], score, target=0.6, max_units=1) == (["a"], [0.505])


@pytest.fixture(scope="module")
def models(artifacts, tmp_path_factory):
    """(int8 IR with only the decode in float, fp32 IR, a fixed input batch) of the embedded model at 64x64."""
    import openvino as ov

    fp32 = artifacts.get("openvino", SIZE)
    rng = np.random.default_rng(0)
    batches = [rng.random((1, 3, *SIZE), dtype=np.float32) for _ in range(4)]
    out = tmp_path_factory.mktemp("scope") / "int8" / "model.xml"
    quantize_openvino(fp32, out, batches, PTQConfig(ignored_scope=IgnoredScope("yolo-pose-float-decode")))
    core = ov.Core()
    return core.read_model(str(out)), core.read_model(str(fp32)), batches[0], fp32


def _head_convs(model) -> dict[str, object]:
    return {canonical_node_name(op.get_friendly_name()): op for op in model.get_ops()
            if op.get_type_name() in ("Convolution", "GroupConvolution") and "model.23" in op.get_friendly_name()}


def _float_units(model) -> set[str]:
    """Head units whose every convolution reads an un-quantized activation."""
    convs = _head_convs(model)
    units = head_units(convs)
    return {u for u in units if all(op.input_value(0).get_node().get_type_name() != "FakeQuantize"
                                    for name, op in convs.items() if re.match(unit_pattern(23, u), name))}


def test_keep_float_reverts_exactly_the_named_unit(models):
    quantized, fp32, _, _ = models
    assert _float_units(quantized) == set()
    reverted = keep_float(quantized, fp32, ["cv4.2.1"])
    assert _float_units(reverted) == {"cv4.2.1"} and _float_units(quantized) == set()  # the input is not touched
    conv = _head_convs(reverted)["/model.23/cv4.2.1.conv/aten::_convolution/Convolution"]
    original = _head_convs(fp32)["/model.23/cv4.2.1.conv/aten::_convolution/Convolution"]
    np.testing.assert_array_equal(conv.input_value(1).get_node().get_data(),
                                  original.input_value(1).get_node().get_data())
    bias, float_bias = bias_port(conv), bias_port(original)  # NNCF's bias correction undone
    moved = bias_port(_head_convs(quantized)["/model.23/cv4.2.1.conv/aten::_convolution/Convolution"])
    assert not np.array_equal(moved.get_source_output().get_node().get_data(),
                              float_bias.get_source_output().get_node().get_data())
    np.testing.assert_array_equal(bias.get_source_output().get_node().get_data(),
                                  float_bias.get_source_output().get_node().get_data())
    neck = keep_float(quantized, fp32, ["model.22"])  # a whole module: every op of it reads float inputs
    ops = [op for op in neck.get_ops() if re.match(r"__module\.model\.22[./]", op.get_friendly_name())
           and op.get_type_name() != "FakeQuantize"]
    assert ops and not any(p.get_source_output().get_node().get_type_name() == "FakeQuantize" for op in ops
                           for p in op.inputs())
    assert _float_units(neck) == set()  # the head still reads int8


def _error(model, fp32_out: np.ndarray, batch: np.ndarray) -> float:
    import openvino as ov

    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return float(np.abs(compiled(batch)[0] - fp32_out).mean())


def test_scan_names_units_and_their_preset_keeps_exactly_those_in_float(models, tmp_path):
    """The scan (scored by closeness to the fp32 model's output) names units that bring the int8 model closer, and
    quantizing with its patterns as `ignored_add` leaves exactly those head units in float."""
    import openvino as ov

    quantized, fp32, batch, fp32_path = models
    reference = ov.Core().compile_model(fp32, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(batch)[0]
    score = lambda model: -_error(model, reference, batch)
    scan = scan_float_scope(quantized, fp32, score, max_drop=0.0, min_gain=1e-6, max_units=3)
    assert scan.fp32 == 0.0 and scan.int8 < 0 and 1 <= len(scan.chosen) <= 3
    assert all(scan.gains[u] >= 1e-6 for u in scan.chosen)
    assert scan.path == sorted(scan.path) and scan.path[0] > scan.int8
    head = head_index(canonical_node_name(op.get_friendly_name()) for op in quantized.get_ops())
    config = PTQConfig(ignored_scope=IgnoredScope("yolo-pose-float-decode", add=tuple(scan.patterns(head))))
    rng = np.random.default_rng(0)
    out = tmp_path / "preset" / "model.xml"
    quantize_openvino(fp32_path, out, [rng.random((1, 3, *SIZE), dtype=np.float32) for _ in range(4)], config)
    assert _float_units(ov.Core().read_model(str(out))) == set(scan.chosen)


def test_the_shipped_scan_preset_is_what_its_scan_named():
    """recipes/int8-ptq-float-scan.yaml holds, in order, the patterns its committed scan result named."""
    recipe = yaml.safe_load((REPO / "recipes" / "int8-ptq-float-scan.yaml").read_text())["modifiers"][0]
    scans = sorted((REPO / "benchmarks" / "results" / "int8-scope-scan").glob("dense-*.json"))
    assert scans, "the scan result the preset came from is committed"
    found = json.loads(scans[0].read_text())
    assert recipe["ignored_preset"] == "yolo-pose-float-decode"
    assert recipe["ignored_add"] == found["patterns"] == [unit_pattern(23, u) for u in found["chosen"]]
    assert found["reached"] and found["chosen"]
