"""Roofline sanity: work counted from the ONNX graph, peaks from the ISA, and the verdict on figures beyond them."""

from __future__ import annotations

import numpy as np
import pytest

from posebench.machine.denormals import census, has_denormals
from posebench.report import thesis
from posebench.machine.roofline import Peak, count_ops, cpu_peak, roofline, thesis_peak


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
    from posebench.machine.roofline import count_ops_openvino

    onnx_ops = count_ops(artifacts.get("onnx", IMGSZ))
    ir_ops = count_ops_openvino(artifacts.get("openvino", IMGSZ))
    assert ir_ops["int8_ops"] == 0 and ir_ops["ops"] == pytest.approx(onnx_ops["ops"], rel=0.01)


@pytest.mark.parametrize("vendor, family, model, flops, core", [
    ("AuthenticAMD", 0x17, 0x01, 16, "Zen / Zen+"),  # EPYC Naples
    ("AuthenticAMD", 0x17, 0x31, 32, "Zen 2"),  # EPYC Rome
    ("AuthenticAMD", 0x19, 0x01, 32, "Zen 3"),  # EPYC Milan
    ("AuthenticAMD", 0x19, 0x11, 32, "Zen 4"),  # EPYC Genoa: AVX-512 on 256-bit pipes
    ("AuthenticAMD", 0x19, 0x61, 32, "Zen 4"),  # Ryzen 7000
    ("AuthenticAMD", 0x1A, 0x02, 64, "Zen 5 (server / desktop)"),  # EPYC Turin: full 512-bit datapath
    ("AuthenticAMD", 0x1A, 0x11, 64, "Zen 5 (server / desktop)"),  # EPYC Turin dense
    ("AuthenticAMD", 0x1A, 0x44, 64, "Zen 5 (server / desktop)"),  # Ryzen 9000
    ("AuthenticAMD", 0x1A, 0x24, 32, "Zen 5 (mobile)"),  # Strix Point
    ("GenuineIntel", 6, 0x3F, 32, "Haswell / Broadwell"),
    ("GenuineIntel", 6, 0x55, 64, "Skylake-SP / Cascade Lake / Cooper Lake"),
    ("GenuineIntel", 6, 0x6A, 64, "Ice Lake (server)"),
    ("GenuineIntel", 6, 0x8C, 32, "Ice Lake / Tiger Lake / Rocket Lake (client)"),
    ("GenuineIntel", 6, 0x8F, 64, "Sapphire / Emerald / Granite Rapids"),
    ("GenuineIntel", 6, 0xAD, 64, "Sapphire / Emerald / Granite Rapids"),
    ("GenuineIntel", 6, 0x97, 32, "Alder / Raptor / Meteor / Arrow / Lunar Lake (P-cores)"),
    ("GenuineIntel", 6, 0xAF, 16, "Sierra Forest (E-cores)"),
])
def test_each_known_core_has_its_fp32_flop_per_cycle(vendor, family, model, flops, core):
    from posebench.machine.microarch import CpuId, lookup

    found, how = lookup(CpuId(vendor, family, model))
    assert found is not None and found.name == core and found.fp32_per_cycle == flops, how
    isa = ["avx2", "fma"] + ([] if "avx512f" in found.lacks else ["avx512f"])
    env = {"isa": isa, "usable_cores": 2, "cpu_model": "any", "cpu_vendor": vendor,
           "cpu_family": family, "cpu_model_number": model}
    assert cpu_peak(env, 1, clock=(1.0, "test")).fp32_gops == flops


def test_zen5_is_not_read_as_zen4_and_the_thesis_genoa_is_unchanged():
    turin = {"isa": ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"], "usable_cores": 2,
             "cpu_model": "AMD EPYC 9B45 128-Core Processor", "cpu_vendor": "AuthenticAMD", "cpu_family": 26,
             "cpu_model_number": 2}
    peak = cpu_peak(turin, 1, clock=(3.0, "test"))
    assert peak.fp32_gops == 3.0 * 64 and "Zen 5" in peak.basis
    # the measurement: ONNX Runtime fp32 yolo11n-pose at 1 thread, 173 GOP/s, is below a Zen 5 core's peak
    # at 3 GHz (192), where the Zen 4 figure (96) made every dense row read "ABOVE PEAK"
    assert not roofline({"float_ops": 173e9, "int8_ops": 0.0, "ops": 173e9}, 1000.0, peak)["beyond_peak"]
    assert thesis_peak("8-core").fp32_gops == 8 * 3.7 * 32  # Genoa: two 256-bit pipes, as before
    assert "Zen 4" in thesis_peak("8-core").basis


def test_a_masked_or_unknown_identity_falls_back_to_the_isa_upper_bound():
    from posebench.machine.microarch import CpuId, lookup

    # this project's Intel VM reports model 167 (Rocket Lake, a client core without AMX) next to AMX flags
    core, how = lookup(CpuId("GenuineIntel", 6, 167), {"avx512f", "amx_tile"})
    assert core is None and "masked" in how
    env = {"isa": ["avx2", "fma", "avx512f", "amx_tile"], "usable_cores": 2, "cpu_model": "Intel Xeon Processor",
           "cpu_vendor": "GenuineIntel", "cpu_family": 6, "cpu_model_number": 167}
    peak = cpu_peak(env, 1, clock=(1.0, "test"))
    assert peak.fp32_gops == 64 and "upper bound" in peak.basis
    unknown = {**env, "cpu_vendor": "HygonGenuine", "cpu_family": 0x18, "cpu_model_number": 1, "isa": ["avx2", "fma"]}
    assert cpu_peak(unknown, 1, clock=(1.0, "test")).fp32_gops == 32
    # records made before identities were kept still read as they did (AMD + AVX-512: Zen 4)
    old = {"isa": ["avx2", "fma", "avx512f"], "usable_cores": 2, "cpu_model": "AMD EPYC 9R14"}
    assert cpu_peak(old, 1, clock=(1.0, "test")).fp32_gops == 32


def test_the_measured_probe_keeps_the_peak_above_what_this_core_does():
    """The clock comes from an FMA-bound probe (ONNX Runtime's SGEMM, one thread), so a peak is never below a
    figure this machine measures, whatever its identity table says."""
    from posebench.machine.environment import fingerprint
    from posebench.machine.roofline import SGEMM_EFFICIENCY, sgemm_gflops_one_core

    rate = sgemm_gflops_one_core()
    assert rate > 1.0  # it runs
    env = fingerprint()
    peak = cpu_peak(env, 1)
    assert peak.fp32_gops >= rate * 0.8 / SGEMM_EFFICIENCY  # (a second measurement on a busy VM may be faster)
    assert env.get("microarchitecture") and env["cpu_vendor"] in peak.basis or "GHz" in peak.basis
