"""Roofline sanity: work counted from the ONNX graph, peaks from the ISA, and the verdict on figures beyond them."""

from __future__ import annotations

import numpy as np
import pytest

from posebench.denormals import census, has_denormals
from posebench.report import thesis
from posebench.roofline import Peak, count_ops, cpu_peak, roofline, thesis_peak


def _conv_model(path, *, quantized: bool = False, weight_scale: float = 1.0):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = (np.random.default_rng(0).standard_normal((16, 8, 3, 3)) * weight_scale).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])]
    inits = [numpy_helper.from_array(w, "w")]
    if quantized:
        nodes = [helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], axis=0), *nodes]
        inits = [numpy_helper.from_array(np.ones((16, 8, 3, 3), np.int8), "wq"),
                 numpy_helper.from_array(np.full(16, 0.1, np.float32), "ws"),
                 numpy_helper.from_array(np.zeros(16, np.int8), "wz")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 32, 32])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_conv_work_is_counted_float_or_int8(tmp_path):
    expected = 2 * 16 * 32 * 32 * 8 * 3 * 3  # 2 x MACs of a 3x3 conv, 8 -> 16 channels, 32x32 output
    _conv_model(tmp_path / "f.onnx")
    _conv_model(tmp_path / "q.onnx", quantized=True)
    assert count_ops(tmp_path / "f.onnx") == {"float_ops": expected, "int8_ops": 0.0, "ops": expected}
    assert count_ops(tmp_path / "q.onnx") == {"float_ops": 0.0, "int8_ops": expected, "ops": expected}


def test_peak_follows_isa_cores_and_clock():
    env = {"isa": ["avx2", "fma", "avx512f", "avx512bw", "avx512_vnni"], "usable_cores": 4}
    intel = cpu_peak({**env, "cpu_model": "Intel Xeon"}, 2, clock=(2.0, "test"))
    amd = cpu_peak({**env, "cpu_model": "AMD EPYC"}, 2, clock=(2.0, "test"))
    avx2 = cpu_peak({"isa": ["avx2", "fma"], "usable_cores": 4, "cpu_model": "AMD EPYC"}, 8, clock=(2.0, "test"))
    assert intel.fp32_gops == 2 * 2.0 * 64 and intel.int8_gops == 4 * intel.fp32_gops
    assert amd.fp32_gops == 2 * 2.0 * 32  # Zen 4 runs AVX-512 on two 256-bit pipes
    assert avx2.fp32_gops == 4 * 2.0 * 32 and avx2.int8_gops == pytest.approx(avx2.fp32_gops * 4 / 3)  # 4 cores max
    figure = roofline({"float_ops": 1e9, "int8_ops": 0.0, "ops": 1e9}, 10.0, Peak(200.0, 800.0, "test"))
    assert figure["gops"] == pytest.approx(100.0) and figure["fraction_of_peak"] == pytest.approx(0.5)
    assert roofline({"float_ops": 1e9, "int8_ops": 0.0, "ops": 1e9}, 4.0, Peak(200.0, 800.0, "t"))["beyond_peak"]


def test_thesis_work_constant_is_posebench_count_of_yolov8s_pose_at_512(tmp_path):
    """The thesis plausibility check uses a constant; it must be what posebench counts on the real export."""
    from posebench.export import ArtifactStore
    from posebench.models import resolve_model

    onnx_path = ArtifactStore(resolve_model("yolov8s-pose.yaml"), tmp_path).get("onnx", (512, 512))
    assert count_ops(onnx_path)["ops"] / 1e9 == pytest.approx(thesis.YOLOV8S_POSE_512_GOPS, abs=0.001)
    # sml-base on 8 cores, 2.759 ms: 19.3 GOP at most 947 GOP/s needs >= 20 ms, 7x slower than published
    peak = thesis_peak("8-core")
    assert thesis.YOLOV8S_POSE_512_GOPS / peak.fp32_gops * 1e3 > 7 * 2.759


def test_denormal_census_finds_subnormal_activations(tmp_path):
    _conv_model(tmp_path / "normal.onnx")
    _conv_model(tmp_path / "tiny.onnx", weight_scale=1e-40)  # weights and outputs below float32 smallest normal
    x = np.random.default_rng(1).random((1, 8, 32, 32), dtype=np.float32)
    clean, dirty = census(tmp_path / "normal.onnx", x), census(tmp_path / "tiny.onnx", x)
    assert clean["activations_subnormal"] == 0 and not has_denormals(clean)
    assert dirty["activations_fraction"] > 0.5 and dirty["weights_fraction"] > 0.5 and has_denormals(dirty)


def test_openvino_ir_is_counted_like_its_onnx(artifacts):
    """An imported OpenVINO IR has no ONNX: its count comes from the IR and agrees with the ONNX's."""
    from conftest import IMGSZ
    from posebench.roofline import count_ops_openvino

    onnx_ops = count_ops(artifacts.get("onnx", IMGSZ))
    ir_ops = count_ops_openvino(artifacts.get("openvino", IMGSZ))
    assert ir_ops["int8_ops"] == 0 and ir_ops["ops"] == pytest.approx(onnx_ops["ops"], rel=0.01)
