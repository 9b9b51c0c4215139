"""Int8 PTQ and fp16: the float-head preset, QDQ ONNX and OpenVINO IR that every CPU runtime runs,
sparsity kept through int8, and the accuracy target on real data (when present)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, run_cli
from posebench.export import ArtifactStore, onnx_weight_sparsity, read_metadata
from posebench.compress.quantize import canonical_node_name, IgnoredScope, head_index
from posebench.compress.recipe import Recipe, RecipeError
from posebench.compress.run import CompressOptions, compress
from posebench.errors import EXIT_NONE_FAILED, EXIT_PARTIAL_SKIPPED, InvalidInputError
from posebench.machine.isa import SATURATING, this_machine
from posebench.measure import fixed_input
from posebench.models import resolve_model
from posebench.runtimes import backend_class, create_backend

SMALL = (160, 160)


@pytest.fixture(scope="module")
def assets() -> Path:
    import ultralytics

    return Path(ultralytics.__file__).parent / "assets"


def _recipe(precision: str = "int8", preset: str = "yolo-pose-float-head", extra: str = "") -> Recipe:
    return Recipe.from_yaml(f"name: {precision}-{preset}\nmodifiers:\n  - type: quantization\n"
                            f"    precision: {precision}\n    imgsz: {SMALL[0]}\n    calibration_images: 8\n"
                            f"    ignored_preset: {preset}\n{extra}")


@pytest.fixture(scope="module")
def int8_bundle(default_source, assets, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("int8")
    compress(default_source, _recipe(), out, options=CompressOptions(calibration=assets))
    return out


def test_presets_select_the_head_decode_by_name(artifacts):
    import onnx

    names = [n.name for n in onnx.load(str(artifacts.get("onnx", SMALL))).graph.node]
    assert head_index(names) == 23  # YOLO11's Pose head
    float_head = IgnoredScope("yolo-pose-float-head").select(names)
    decode = IgnoredScope("yolo-pose-float-decode").select(names)
    assert set(decode) < set(float_head)
    assert all(n.startswith("/model.23/") for n in float_head)
    assert any("/cv4." in n for n in float_head) and not any("/cv4." in n for n in decode)
    assert not any(re.match(r"^/model\.23/cv[23]\.", n) for n in float_head)
    assert any("Sigmoid" in n for n in decode) and any("dfl" in n for n in decode)
    assert IgnoredScope("none").select(names) == []
    first = IgnoredScope("none", add=(r"^/model\.0/",)).select(names)
    assert first and all(n.startswith("/model.0/") for n in first)
    assert IgnoredScope("yolo-pose-float-head", remove=(r".*/cv4\..*",)).select(names) == decode
    # the keypoint branch's 3x3 convs in int8, its last 1x1 conv in float: in ONNX names and in torch-IR names
    kpt_out = IgnoredScope("yolo-pose-float-kpt-out").select(names)
    assert set(decode) < set(kpt_out) < set(float_head)
    assert any("/cv4.0/cv4.0.2/" in n for n in kpt_out) and not any("/cv4.0/cv4.0.1/" in n for n in kpt_out)
    torch_names = ["__module.model.23.cv4.0.1.conv/aten::_convolution/Convolution",
                   "__module.model.23.cv4.0.2/aten::_convolution/Convolution",
                   "__module.model.23.cv2.0.0.conv/aten::_convolution/Convolution"]
    assert IgnoredScope("yolo-pose-float-kpt-out").select(torch_names) == [torch_names[1]]


@pytest.mark.parametrize("model, feeds", [(None, [16, 19, 22]), ("yolov8n-pose.yaml", [15, 18, 21])])
def test_float_head_neck_preset_finds_the_modules_feeding_the_head(tmp_path, model, feeds):
    """The head's inputs are read off the graph (ONNX and torch-converted IR agree); the IR's activations, all
    named after one shared SiLU module of the head, are read as part of the conv that feeds them."""
    import onnx
    import openvino as ov

    from posebench.compress.quantize import head_inputs, onnx_edges, openvino_edges, openvino_scope_names

    store = ArtifactStore(resolve_model(model), tmp_path)
    graph = onnx.load(str(store.get("onnx", (64, 64)))).graph
    assert head_inputs(onnx_edges(graph)) == feeds
    names = [n.name for n in graph.node]
    head = head_index(names)
    chosen = IgnoredScope("yolo-pose-float-head-neck").select(names, feeds)
    modules = {int(re.match(r"^/model\.(\d+)/", n).group(1)) for n in chosen}
    assert modules == {*feeds, head}
    assert set(IgnoredScope("yolo-pose-float-head").select(names)) < set(chosen)
    with pytest.raises(InvalidInputError, match="feed the head"):
        IgnoredScope("yolo-pose-float-head-neck").select(names)
    ir = ov.Core().read_model(str(store.get("openvino", (64, 64))))
    read_as = openvino_scope_names(ir)
    swish = [name for name, read in read_as.items() if name != read]
    assert len(swish) > 50 and all(f".model.{head}." in name for name in swish)  # the shared module's name
    assert head_inputs((read_as[a], read_as[b]) for a, b in openvino_edges(ir)) == feeds
    assert head_inputs(openvino_edges(ir)) != feeds  # read by their own names, every module seems to feed the head
    kept = IgnoredScope("yolo-pose-float-head").select(list(read_as.values()))
    assert all(canonical_node_name(n).startswith(f"/model.{head}/") for n in kept)
    assert sum(n.endswith("/act") for n in kept) < 10  # only the head's own activations


@pytest.mark.parametrize("model", [None, "yolov8n-pose.yaml", "yolo26n-pose.yaml"])
def test_float_coarse_preset_keeps_p4_p5_in_float_and_p3_in_int8(tmp_path, model):
    """The coarse levels (the neck modules that emit P4 and P5, the head's branches there: box/class at P4 and P5,
    keypoints at P5) and the decode stay float; P3's neck module and head branches are quantized. Level by the
    branch index, in ONNX names (cv2.1/cv2.1.0/...) and torch-converted IR names (cv2.1.0.conv)."""
    import onnx

    from posebench.compress.quantize import head_inputs, onnx_edges

    graph = onnx.load(str(ArtifactStore(resolve_model(model), tmp_path).get("onnx", (64, 64)))).graph
    names, feeds = [n.name for n in graph.node], head_inputs(onnx_edges(graph))
    head = head_index(names)
    chosen = IgnoredScope("yolo-pose-float-coarse").select(names, feeds)
    modules = {int(re.match(r"^/model\.(\d+)/", n).group(1)) for n in chosen}
    assert modules == {*feeds[1:], head}  # P3's neck module (feeds[0]) runs int8
    decode = IgnoredScope("yolo-pose-float-decode").select(names)
    assert set(decode) < set(chosen)
    branch = re.compile(rf"^/model\.{head}/(?:one2one_)?(cv[234](?:_kpts)?)\.(\d)[/.]")
    kept = {(m.group(1), int(m.group(2))) for n in chosen if (m := branch.match(n)) and n.endswith("Conv")}
    present = {(m.group(1), int(m.group(2))) for n in names if (m := branch.match(n)) and n.endswith("Conv")}
    expected = {(b, level) for b, level in present if level == 2 or (level == 1 and b in ("cv2", "cv3"))}
    assert kept == expected and any(level == 0 for _, level in present - kept)
    with pytest.raises(InvalidInputError, match="several pyramid levels"):
        IgnoredScope("yolo-pose-float-coarse").select(names, feeds[:1])
    torch_names = ["__module.model.23.cv2.1.0.conv/aten::_convolution/Convolution",
                   "__module.model.23.cv2.0.0.conv/aten::_convolution/Convolution",
                   "__module.model.23.cv4.1.2/aten::_convolution/Convolution",
                   "__module.model.23.cv4.2.2/aten::_convolution/Convolution",
                   "__module.model.19.cv1.conv/aten::_convolution/Convolution",
                   "__module.model.16.cv1.conv/aten::_convolution/Convolution"]
    assert IgnoredScope("yolo-pose-float-coarse").select(torch_names, [16, 19, 22]) == [
        torch_names[0], torch_names[3], torch_names[4]]


def test_head_index_of_yolov8_is_22(tmp_path):
    import onnx

    store = ArtifactStore(resolve_model("yolov8n-pose.yaml"), tmp_path)
    assert head_index(n.name for n in onnx.load(str(store.get("onnx", (64, 64)))).graph.node) == 22


@pytest.mark.slow
def test_int8_bundle_keeps_the_head_in_float_and_runs_on_every_cpu_runtime(int8_bundle, artifacts):
    bundle = json.loads((int8_bundle / "bundle.json").read_text())
    assert bundle["precision"] == "int8" and bundle["imgsz"] == list(SMALL)
    meta = read_metadata(int8_bundle / bundle["artifacts"]["onnx"])
    quantized, floats = set(meta["quantization"]["quantized_nodes"]), set(meta["quantization"]["float_nodes"])
    assert floats and not quantized & floats  # the preset was applied
    assert any("/model.23/cv4." in n for n in floats) and not any("/model.23/cv4." in n for n in quantized)
    assert any(n.startswith("/model.0/") for n in quantized)
    ov_meta = read_metadata(int8_bundle / bundle["artifacts"]["openvino"])
    ov_quantized = [canonical_node_name(n) for n in ov_meta["quantization"]["quantized_nodes"]]
    assert ov_quantized and any(n.startswith("/model.0/") for n in ov_quantized)
    assert not any("/model.23/cv4." in n for n in ov_quantized)
    # the IR comes from torch (SiLU = one Swish op): NNCF quantizes conv inputs, not both inputs of every SiLU's
    # Mul, as it did on the IR converted from ONNX (267 quantizers on yolo11n-pose, 1.2x slower)
    import openvino as ov

    ops = [op.get_type_name() for op in ov.Core().read_model(
        str(int8_bundle / bundle["artifacts"]["openvino"])).get_ops()]
    assert ops.count("Swish") > 50 and ops.count("FakeQuantize") <= ops.count("Convolution") + 20
    source = resolve_model(int8_bundle)
    store = ArtifactStore(source, int8_bundle / "cache")
    batch = fixed_input((1, 3, *SMALL))
    with create_backend("torch", artifacts.get("pt", SMALL), threads=2) as backend:
        reference = backend.infer(batch)[0]
    for runtime in ("onnxruntime", "openvino", "deepsparse"):
        cls = backend_class(runtime)
        with create_backend(runtime, store.get(cls.artifact_format, SMALL, prefer=cls.prefers), threads=2) as b:
            out = b.infer(batch)[0]
        assert out.shape == reference.shape
        # int8 is not bit-exact, but boxes must stay in the same place: coordinates within a few pixels
        assert np.median(np.abs(out[:, :4] - reference[:, :4])) < 3.0, runtime


@pytest.mark.slow  # builds the int8 bundle (the slow tier builds it anyway)
def test_each_runtime_gets_its_own_int8_form(int8_bundle):
    import onnx

    bundle = json.loads((int8_bundle / "bundle.json").read_text())
    assert set(bundle["artifacts"]) == {"onnx", "openvino", "deepsparse"}
    store = ArtifactStore(resolve_model(int8_bundle), int8_bundle / "cache")
    picked = {rt: store.get(backend_class(rt).artifact_format, SMALL, prefer=backend_class(rt).prefers).name
              for rt in ("onnxruntime", "openvino", "deepsparse")}
    assert picked == {"onnxruntime": "model-int8.onnx", "openvino": "model.xml",
                      "deepsparse": "model-int8-deepsparse.onnx"}
    qdq = onnx.load(str(int8_bundle / "model-int8.onnx")).graph
    form = onnx.load(str(int8_bundle / "model-int8-deepsparse.onnx")).graph
    ops = [n.op_type for n in form.node]
    quantized_convs = [n for n in qdq.node if n.op_type == "Conv" and n.name in
                       read_metadata(int8_bundle / "model-int8.onnx")["quantization"]["quantized_nodes"]]
    assert ops.count("ConvInteger") == len(quantized_convs) > 50
    assert "DequantizeLinear" not in ops and ops.count("QuantizeLinear") == ops.count("ConvInteger")
    meta = read_metadata(int8_bundle / "model-int8-deepsparse.onnx")
    assert meta["form"] == "deepsparse" and meta["precision"] == "int8"
    assert meta["quantization"]["deepsparse_form"]["convinteger_convs"] == ops.count("ConvInteger")


@pytest.mark.slow
def test_deepsparse_compiles_its_form_and_falls_back_on_qdq(int8_bundle):
    """DeepSparse's own diagnostics: the QDQ ONNX runs 0 % in its engine (per-channel DequantizeLinear refused,
    weights behind DequantizeLinear not constant), the ConvInteger form 100 %."""
    from posebench.runtimes.deepsparse import engine_coverage

    qdq = engine_coverage(int8_bundle / "model-int8.onnx")
    assert qdq["percent"] == 0 and (qdq["failure"] or qdq["unsupported"]), qdq
    assert any("DequantizeLinear" in reason for reason in qdq["unsupported"]), qdq
    form = engine_coverage(int8_bundle / "model-int8-deepsparse.onnx")
    assert form["percent"] == 100 and form["subgraphs"] == 1 and form["failure"] is None, form


@pytest.mark.slow
def test_deepsparse_form_matches_the_qdq_model(int8_bundle):
    """Same int8 weights and activation scales: DeepSparse on its form agrees with ONNX Runtime on the QDQ model
    within int8 tolerance (the form drops the QDQ model's extra re-quantization of conv outputs and SiLU)."""
    batch = fixed_input((1, 3, *SMALL))
    with create_backend("onnxruntime", int8_bundle / "model-int8.onnx", threads=2) as b:
        qdq = b.infer(batch)[0]
    with create_backend("deepsparse", int8_bundle / "model-int8-deepsparse.onnx", threads=2) as b:
        form = b.infer(batch)[0]
    with create_backend("onnxruntime", int8_bundle / "model-int8-deepsparse.onnx", threads=2) as b:
        form_ort = b.infer(batch)[0]
    assert form.shape == qdq.shape
    for other in (form_ort, qdq):  # one graph on two runtimes; two int8 graphs of one calibration
        boxes = np.abs(form[:, :4] - other[:, :4])
        assert np.median(boxes) < 1.0 and np.percentile(boxes, 99) < 8.0, (np.median(boxes), np.percentile(boxes, 99))
        assert np.corrcoef(form[:, 4].ravel(), other[:, 4].ravel())[0, 1] > 0.98


def test_deepsparse_compatible_opset_imports(int8_bundle):
    import onnx

    model = onnx.load(str(int8_bundle / "model-int8.onnx"))
    assert model.ir_version <= 8
    assert {o.domain for o in model.opset_import} <= {"", "com.microsoft"}


@pytest.mark.slow
def test_bundle_through_bench_and_val_cli(int8_bundle, tmp_path):
    result = run_cli("bench", "--model", str(int8_bundle), "--imgsz", "160", "--runtime", "onnxruntime,torch,deepsparse",
                     "--threads", "1", "--iters", "3", "--min-seconds", "0", "--warmup", "1", "--warmup-seconds", "0",
                     "--out", str(tmp_path), "--json", str(tmp_path / "b.json"))
    assert result.returncode == EXIT_PARTIAL_SKIPPED, result.stderr  # torch cannot run an int8 bundle
    records = {r["trial"]["runtime"]: r for r in json.loads((tmp_path / "b.json").read_text())}
    assert records["onnxruntime"]["status"] == "ok" and records["onnxruntime"]["trial"]["precision"] == "int8"
    assert records["onnxruntime"]["trial"]["variant"] == "int8-yolo-pose-float-head"
    assert records["torch"]["status"] == "skipped" and "int8 bundle" in records["torch"]["error"]
    assert records["deepsparse"]["status"] == "ok" and records["deepsparse"]["artifact"]["form"] == "deepsparse"
    assert records["onnxruntime"]["artifact"]["form"] is None  # the QDQ model
    wrong = run_cli("bench", "--model", str(int8_bundle), "--imgsz", "320", "--runtime", "onnxruntime",
                    "--iters", "3", "--min-seconds", "0", "--out", str(tmp_path / "w"), "--json", str(tmp_path / "w.json"))
    assert "built for imgsz 160,160" in json.loads((tmp_path / "w.json").read_text())[0]["error"]
    assert wrong.returncode == EXIT_NONE_FAILED  # a wrong size is an error, not a skip


@pytest.mark.slow
def test_pruned_then_int8_keeps_its_sparsity(default_source, assets, tmp_path):
    pruning = Recipe.load(REPO / "recipes" / "yolo-pose-oneshot-p50.yaml")
    from dataclasses import replace

    recipe = replace(pruning, modifiers=pruning.modifiers + _recipe().modifiers, name="p50-int8")
    summary = compress(default_source, recipe, tmp_path, options=CompressOptions(calibration=assets))
    from posebench.compress.prune import resolve_targets, sparsity_table
    from posebench.ultralytics_adapter import load_yolo

    model = load_yolo(tmp_path / "model.pt").model.float()
    rows = {r["name"]: r for r in sparsity_table(model, [t.name for t in resolve_targets(recipe, model)])}
    int8_zeros = onnx_weight_sparsity(tmp_path / "model-int8.onnx")
    checked = [n for n in rows if n in int8_zeros]
    assert len(checked) > 50
    for name in checked:  # symmetric int8 weights: zero stays exactly zero
        assert int8_zeros[name]["zeros"] >= rows[name]["zeros"] > 0, name
    assert summary["bundle"]["sparsity"] > 0.4


@pytest.mark.slow
def test_fp16_bundle_matches_fp32(default_source, tmp_path, artifacts):
    compress(default_source, _recipe("fp16"), tmp_path)
    store = ArtifactStore(resolve_model(tmp_path), tmp_path / "cache")
    batch = fixed_input((1, 3, *SMALL))
    with create_backend("onnxruntime", artifacts.get("onnx", SMALL), threads=2) as backend:
        reference = backend.infer(batch)[0]
    for runtime in ("onnxruntime", "openvino"):
        with create_backend(runtime, store.get(backend_class(runtime).artifact_format, SMALL), threads=2) as b:
            out = b.infer(batch)[0]
        assert np.abs(out - reference).max() / np.abs(reference).max() < 1e-2, runtime
    assert read_metadata(store.get("onnx", SMALL))["precision"] == "fp16"


@pytest.mark.parametrize("extra,message", [
    ("    ignored_preset: everything\n", "ignored_preset: must be one of"),
    ("    imgsz: 100\n", "imgsz: must be a multiple of 32"),
    ("    ignored_add: ['(']\n", "bad regular expression"),
    ("    calibration_method: Median\n", "calibration_method: must be one of MinMax, Entropy, Percentile"),
    ("    bias_correction: slow\n", "bias_correction: must be one of fast, full"),
    ("    method: qat\n    bias_correction: full\n", "bias_correction: only applies to method: ptq"),
])
def test_broken_quantization_modifier(extra, message):
    text = "modifiers:\n  - type: quantization\n" + extra
    with pytest.raises(RecipeError, match=message):
        Recipe.from_yaml(text)


@pytest.mark.slow
def test_full_bias_correction_is_recorded_and_changes_only_the_biases(default_source, assets, int8_bundle, tmp_path):
    """`bias_correction: full` (NNCF, layer by layer) quantizes the same ops as the default one-pass correction,
    with other bias values, and says so in the IR's metadata. (Whether it is more faithful is a measurement:
    on 2 images at 160x160 it is not on every CPU; on the street video at 384x640 it is, benchmarks/realtime.py.)"""
    out = tmp_path / "full"
    compress(default_source, _recipe(extra="    bias_correction: full\n"), out,
             options=CompressOptions(calibration=assets))
    full, fast = (ArtifactStore(resolve_model(b), tmp_path / "cache").get("openvino", SMALL) for b in (out, int8_bundle))
    meta_full, meta_fast = read_metadata(full)["quantization"], read_metadata(fast)["quantization"]
    assert (meta_full["bias_correction"], meta_fast["bias_correction"]) == ("full", "fast")
    assert "full bias correction" in meta_full["tool"]
    assert meta_full["quantized_nodes"] == meta_fast["quantized_nodes"]
    assert full.with_suffix(".bin").read_bytes() != fast.with_suffix(".bin").read_bytes()


def test_int8_without_calibration_images_is_refused(default_source, tmp_path):
    with pytest.raises(InvalidInputError, match="needs calibration images"):
        compress(default_source, _recipe(), tmp_path)


# ---- accuracy on real data: the target ---------------------------------------------------------

@pytest.mark.slow
def test_int8_ptq_accuracy_target_and_preset_effect(coco_pose_mini, default_source, tmp_path):
    """Calibrated on street-video frames (disjoint from the evaluation images), scored on val+train2017."""
    import shutil

    from posebench.evaluate.data import load_dataset
    from posebench.evaluate.validate import Predictor, validate

    video = coco_pose_mini.parent / "street-video" / "street.avi"
    if not video.is_file():
        pytest.skip(f"calibration video {video} not found")
    data = tmp_path / "data"
    shutil.copytree(coco_pose_mini, data)
    text = (data / "coco-pose-mini.yaml").read_text()
    (data / "both.yaml").write_text(text.replace("val: images/val", "val: [images/val, images/train2017]"))
    dataset = load_dataset(data / "both.yaml")

    def pose_map(source, runtime: str) -> float:
        store = ArtifactStore(source, tmp_path / "cache")
        with create_backend(runtime, store.get(backend_class(runtime).artifact_format, (640, 640)), threads=2) as b:
            return validate(Predictor(b, (640, 640), (17, 3)), dataset)["pose"]["map50_95"]

    scores = {}
    for preset in ("yolo-pose-float-head", "yolo-pose-float-decode", "yolo-pose-float-coarse"):
        correction = "full" if preset == "yolo-pose-float-coarse" else "fast"
        recipe = Recipe.from_yaml(f"name: {preset}\nmodifiers:\n  - type: quantization\n    imgsz: 640\n"
                                  f"    calibration_images: 64\n    ignored_preset: {preset}\n"
                                  f"    bias_correction: {correction}\n")
        out = tmp_path / preset
        compress(default_source, recipe, out, options=CompressOptions(calibration=video, cache_dir=tmp_path / "c"))
        target = json.loads((out / "bundle.json").read_text())["int8_target"]  # what the product picked for this CPU
        assert target["target"] == this_machine() and target["reduce_range"] == (this_machine() in SATURATING)
        scores[preset] = {rt: pose_map(resolve_model(out), rt) for rt in ("onnxruntime", "openvino")}
    fp32 = {rt: pose_map(default_source, rt) for rt in ("onnxruntime", "openvino")}
    for rt in ("onnxruntime", "openvino"):
        assert fp32[rt] - scores["yolo-pose-float-head"][rt] <= 0.010, (rt, fp32, scores)
        assert fp32[rt] - scores["yolo-pose-float-coarse"][rt] <= 0.010, (rt, fp32, scores)
        assert fp32[rt] - scores["yolo-pose-float-decode"][rt] > fp32[rt] - scores["yolo-pose-float-head"][rt]


def test_int8_float_parts_run_bf16_by_default_only_where_the_cpu_computes_bf16(int8_bundle, artifacts):
    """OpenVINO's `inference_precision` defaults to auto: an int8 model's float parts in bf16 on a CPU with
    AVX512_BF16 / AMX (as fast as Ultralytics' int8 export there), f32 elsewhere and for float models; a run can
    still ask for either, and the record says what ran."""
    from posebench.machine.cpu import bf16_arithmetic, cpu_flags
    from posebench.runtimes.openvino import auto_precision

    bundle = json.loads((int8_bundle / "bundle.json").read_text())
    ir = int8_bundle / bundle["artifacts"]["openvino"]
    fp32_ir = artifacts.get("openvino", SMALL)
    assert auto_precision(ir, {"avx512_vnni", "amx_bf16"}) == "bf16" == auto_precision(ir, {"avx512_bf16"})
    assert auto_precision(ir, {"avx2", "avx512_vnni"}) == "f32"
    assert auto_precision(fp32_ir, {"amx_bf16"}) == "f32"
    here = "bf16" if bf16_arithmetic(cpu_flags()) else "f32"
    for artifact, options, expected in ((ir, {}, here), (ir, {"inference_precision": "f32"}, "f32"),
                                        (fp32_ir, {}, "f32")):
        with create_backend("openvino", artifact, threads=1, options=options) as backend:
            assert ("bfloat16" if expected == "bf16" else "float32") in backend.info()["precision"]
    assert backend_class("openvino").identity({"inference_precision": "f32"}) == {"inference_precision": "f32"}
    assert backend_class("openvino").identity({}) == {}
