"""Int8 that knows its target CPU: the kernel family of a CPU, the settings picked for it, the warning when a
bundle runs elsewhere, and the non-VNNI kernels themselves, reached on any x86 machine through qemu-user with
an AVX2-only CPU model (ONNX Runtime's MLAS dispatches on CPUID, which qemu emulates)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from posebench.bench import artifact_warnings
from posebench.errors import InvalidInputError
from posebench.machine.isa import SATURATING, choose_int8, int8_mismatch, int8_target_of, this_machine

QEMU = shutil.which("qemu-x86_64")
QEMU_CPU = "Haswell-noTSX"  # AVX2 + FMA, no AVX-512, no VNNI
needs_qemu = pytest.mark.skipif(QEMU is None or not sys.platform.startswith("linux"),
                                reason="qemu-x86_64 not installed (apt-get install qemu-user): the non-VNNI int8 "
                                       "kernels cannot be reached on this machine")


@pytest.mark.parametrize("flags,family", [
    ({"avx2", "fma"}, "avx2"),
    ({"avx2", "avx512f", "avx512bw"}, "avx512"),  # Skylake-SP: wide, but no VNNI
    ({"avx2", "avx512f", "avx512bw", "avx512_vnni"}, "avx512_vnni"),
    ({"avx2", "avx_vnni"}, "avx_vnni"),
    ({"avx2", "avx512bw", "avx512_vnni", "amx_tile", "amx_int8"}, "amx"),
    ({"sse4_2"}, "generic"),
])
def test_int8_family_of_a_cpu(flags, family):
    assert int8_target_of(flags) == family


@pytest.mark.parametrize("flags,kind", [
    ({"avx2", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16"}, "avx512_vnni_bf16"),  # AMD Zen 4 / Zen 5
    ({"avx2", "avx512f", "avx512bw", "avx512_vnni"}, "avx512_vnni"),  # Cascade Lake: no bf16
    ({"avx2", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16"}, "amx"),
    ({"avx2", "fma"}, "avx2"),
])
def test_cpu_kind_for_speed_claims(flags, kind):
    """The kind a speed figure is stated with; under ONEDNN_MAX_CPU_ISA a Zen 5 counts as what it runs as."""
    from posebench.machine.cpu import capped_flags
    from posebench.machine.isa import CPU_KINDS, cpu_kind

    assert cpu_kind(flags) == kind and kind in CPU_KINDS
    zen5 = {"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16"}
    assert cpu_kind(capped_flags(zen5, "AVX2")) == "avx2"
    assert cpu_kind(capped_flags(zen5, "AVX512_CORE_VNNI")) == "avx512_vnni"


def test_settings_follow_the_target():
    for saturating in ("avx2", "avx512", "generic"):
        choice = choose_int8(saturating)
        assert choice.reduce_range and "vpmaddubsw" in choice.reason and choice.built_on == this_machine()
    for exact in ("avx512_vnni", "avx_vnni", "amx"):
        assert not choose_int8(exact).reduce_range
    assert choose_int8("auto").target == this_machine()
    forced = choose_int8("avx2", reduce_range=False)  # a recipe may force it, and the record says so
    assert not forced.reduce_range and "overridden" in forced.reason and "accuracy may drop" in forced.reason
    with pytest.raises(InvalidInputError, match='Did you mean "avx512"'):
        choose_int8("avx521")


def test_mismatch_warning_goes_into_records():
    assert int8_mismatch("avx2", "avx2") is None
    assert "saturate" in int8_mismatch("avx512_vnni", "avx2")
    assert "--target-isa auto" in int8_mismatch("avx2", "avx512_vnni")
    meta = {"precision": "int8", "quantization": {"int8_target": {"target": "avx512_vnni"}}}
    assert artifact_warnings(meta, {"int8_path": "avx2"}, "onnxruntime")
    assert not artifact_warnings(meta, {"int8_path": "avx512_vnni"}, "onnxruntime")
    assert not artifact_warnings({"precision": "fp32"}, {"int8_path": "avx2"}, "onnxruntime")
    legacy = {"precision": "int8", "quantization": {"reduce_range": False}}  # built before targets were recorded
    assert artifact_warnings(legacy, {"int8_path": "avx2"}, "deepsparse")


def _saturating_conv(path: Path, weight_bits: int) -> None:
    """One QDQ conv whose u8 x s8 pair sums overflow int16 with 8-bit weights (activations 255, weights ~113)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    top = 2 ** (weight_bits - 1)
    w = rng.integers(int(top * 0.78), top, size=(32, 64, 1, 1)).astype(np.int8)
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=0),
             helper.make_node("Conv", ["xd", "wd"], ["y"]),
             helper.make_node("QuantizeLinear", ["y", "ys", "yz"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["out"])]
    inits = [numpy_helper.from_array(np.array(np.float32(1 / 255)), "xs"),
             numpy_helper.from_array(np.array(np.uint8(0)), "xz"), numpy_helper.from_array(w, "w"),
             numpy_helper.from_array(np.full((32,), 1.28 / top, np.float32), "ws"),
             numpy_helper.from_array(np.zeros(32, np.int8), "wz"),
             numpy_helper.from_array(np.array(np.float32(1.0)), "ys"),
             numpy_helper.from_array(np.array(np.uint8(0)), "yz")]
    graph = helper.make_graph(nodes, "sat", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64, 4, 4])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 32, 4, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


RUN = """
import sys, numpy as np, onnxruntime as ort
so = ort.SessionOptions(); so.intra_op_num_threads = 1
for path in sys.argv[2:]:
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    shape = [d if isinstance(d, int) else 1 for d in s.get_inputs()[0].shape]
    x = np.ones(shape, np.float32) if "sat" in path else np.random.default_rng(0).random(shape, dtype=np.float32)
    np.save(path + sys.argv[1] + ".npy", s.run(None, {s.get_inputs()[0].name: x})[0])
"""


def _run_ort(paths: list[Path], emulated: bool) -> list[np.ndarray]:
    tag = "-emulated" if emulated else "-native"
    command = [sys.executable, "-c", RUN, tag, *map(str, paths)]
    if emulated:
        command = [QEMU, "-cpu", QEMU_CPU, *command]
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    return [np.load(str(p) + tag + ".npy") for p in paths]


@pytest.mark.slow
@needs_qemu
def test_non_vnni_kernels_saturate_and_the_avx2_bundle_does_not(tmp_path, cache_dir):
    """Under an AVX2 CPU model ONNX Runtime's int8 conv clips 8-bit weights (the saturation is real, and the
    emulation reaches it); a posebench bundle built for avx2 gives the same outputs on both kernel families."""
    from conftest import REPO

    full, seven = tmp_path / "sat8.onnx", tmp_path / "sat7.onnx"
    _saturating_conv(full, 8)
    _saturating_conv(seven, 7)
    recipe = REPO / "recipes" / "int8-ptq.yaml"
    calib = Path(__import__("ultralytics").__file__).parent / "assets"
    bundles = {}
    for target in ("avx2", "avx512_vnni"):
        out = tmp_path / f"int8-{target}"
        _compress_small(recipe, calib, out, target, cache_dir)
        bundles[target] = out
    avx2_onnx = bundles["avx2"] / "model-int8.onnx"
    meta = json.loads((bundles["avx2"] / "bundle.json").read_text())
    assert meta["int8_target"]["target"] == "avx2" and meta["int8_target"]["reduce_range"]
    paths = [full, seven, avx2_onnx, bundles["avx512_vnni"] / "model-int8.onnx"]
    native = _run_ort(paths, emulated=False)
    emulated = _run_ort(paths, emulated=True)
    # the synthetic conv: exact with VNNI, clipped without it (emulated always; natively on a non-VNNI CPU);
    # with 7-bit weights exact on both
    for bits, n, e in ((8, native[0], emulated[0]), (7, native[1], emulated[1])):
        exact = _exact_output(tmp_path / ("sat8.onnx" if bits == 8 else "sat7.onnx"))
        if bits == 8:
            assert np.abs(e - exact).max() > 0.1 * exact.max(), "the emulated AVX2 kernel should saturate"
            assert this_machine() in SATURATING or np.abs(n - exact).max() <= 1.0  # VNNI here: exact
        else:
            assert np.abs(e - exact).max() <= 1.0 and np.abs(n - exact).max() <= 1.0
    # the real model built for avx2 runs the same on both kernel families (float rounding only)
    scale = np.abs(native[2]).max()
    assert np.abs(native[2] - emulated[2]).max() <= 1e-3 * scale, "avx2 bundle differs across kernel families"


def _exact_output(path: Path) -> np.ndarray:
    """What the synthetic QDQ conv computes without saturation: int32 sums, requantized (scale 1, uint8)."""
    import onnx
    from onnx import numpy_helper

    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
    sums = inits["w"].astype(np.int64).reshape(32, 64).sum(axis=1) * 255 * inits["ws"] / 255
    return np.broadcast_to(np.clip(np.round(sums), 0, 255)[None, :, None, None], (1, 32, 4, 4)).astype(np.float32)


def _compress_small(recipe: Path, calib: Path, out: Path, target: str, cache_dir: Path) -> None:
    from posebench.compress.recipe import Recipe
    from posebench.compress.run import CompressOptions, compress
    from posebench.models import resolve_model

    text = Recipe.load(recipe).to_yaml().replace("  - 640\n  - 640", "  - 96\n  - 128")
    small = Recipe.from_yaml(text.replace("calibration_images: 128", "calibration_images: 2"))
    compress(resolve_model(None), small, out, options=CompressOptions(calibration=calib, cache_dir=cache_dir,
                                                                      target_isa=target))


def test_onednn_isa_cap_is_what_the_machine_is_recorded_as(monkeypatch):
    """Under ONEDNN_MAX_CPU_ISA OpenVINO and torch run the capped kernels, so the record says what the machine ran
    as (flags, int8 path) and what it is; a misspelt cap is refused rather than recorded as something else."""
    from posebench.machine.cpu import capped_flags
    from posebench.machine.environment import fingerprint

    zen4 = {"sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
            "lm", "ht"}
    assert capped_flags(zen4, "AVX2") == {"sse4_2", "avx", "avx2", "fma", "f16c", "lm", "ht"}
    assert int8_target_of(capped_flags(zen4, "AVX512_CORE")) == "avx512"
    assert int8_target_of(capped_flags(zen4, "AVX512_CORE_VNNI")) == "avx512_vnni"
    assert "avx512_bf16" not in capped_flags(zen4, "AVX512_CORE_VNNI")
    assert capped_flags(zen4, None) == zen4
    with pytest.raises(InvalidInputError, match="not a oneDNN ISA level"):
        capped_flags(zen4, "AVX3")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    env = fingerprint()
    assert env["onednn_max_cpu_isa"] == "AVX2"
    assert env["int8_path"] in ("avx2", "generic") and not any(f.startswith("avx512") for f in env["isa"])
    assert set(env["isa"]) <= set(env["native_isa"])
    assert this_machine() == env["int8_path"]
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "ALL")
    assert "onednn_max_cpu_isa" not in fingerprint()


def test_ultralytics_openvino_compiles_in_f32_under_a_cap_without_bf16(artifacts, monkeypatch):
    """Ultralytics compiles OpenVINO IRs with no precision hint; under ONEDNN_MAX_CPU_ISA=AVX2 OpenVINO would pick
    bf16 from CPUID on a bf16 CPU and fail. The scoped fix hands compiles the f32 hint and puts OpenVINO back."""
    import openvino as ov

    import posebench.machine.cpu
    from posebench.ultralytics_adapter import openvino_as_the_capped_cpu

    xml = str(artifacts.get("openvino", (160, 160)))
    original = ov.Core.compile_model
    # the cap as posebench reads it, not the variable: oneDNN reads that once per process, and would keep the rest
    # of this test session on AVX2 kernels
    monkeypatch.setattr(posebench.machine.cpu, "onednn_isa_cap", lambda: "AVX2")
    with openvino_as_the_capped_cpu():
        compiled = ov.Core().compile_model(xml, "CPU", {"PERFORMANCE_HINT": "LATENCY"})
        assert compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    assert ov.Core.compile_model is original
    monkeypatch.setattr(posebench.machine.cpu, "onednn_isa_cap", lambda: None)
    with openvino_as_the_capped_cpu():
        assert ov.Core.compile_model is original  # no cap: nothing touched
