"""Int8 quantization-aware training: recipe rules, exporter-exact node names, and a tiny real QAT run
(pruned one-shot to 50 %, then NNCF QAT through Ultralytics' trainer for 1 epoch at 160 px) whose QDQ ONNX
runs on onnxruntime, openvino and deepsparse and keeps every pruned zero in its int8 weights."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from posebench.export import ArtifactStore, onnx_weight_sparsity, read_metadata
from posebench.compress.recipe import Distillation, Recipe, RecipeError
from posebench.compress.run import CompressOptions, compress
from posebench.errors import InvalidInputError
from posebench.models import resolve_model
from posebench.runtimes import backend_class, create_backend

SMALL = (160, 160)
QAT = ("modifiers:\n  - type: quantization\n    method: qat\n    imgsz: 160\n    calibration_images: 8\n")


@pytest.mark.train
@pytest.mark.parametrize("extra,message", [
    ("    method: ptq\n    epochs: 3\n", "epochs: only applies to method: qat"),
    ("    method: qat\n    precision: fp16\n", "method: qat trains int8 only"),
    ("    method: qat\n    ignored_preset: none\n", "keeps the box/keypoint decode in float"),
    ("    method: qta\n", "method: must be one of ptq, qat"),
    ("    method: qat\n    epochs: 0\n", r"epochs: 0 is outside \[1, 10000\]"),
])
def test_broken_qat_modifier(extra, message):
    with pytest.raises(RecipeError, match=message):
        Recipe.from_yaml("modifiers:\n  - type: quantization\n" + extra)


@pytest.mark.train
def test_shipped_qat_recipes_round_trip_and_epochs_override():
    qat_only = Recipe.load(REPO / "recipes" / "int8-qat.yaml")
    pruned_qat = Recipe.load(REPO / "recipes" / "yolo-pose-p55-int8.yaml")
    for recipe in (qat_only, pruned_qat):
        assert recipe.qat() is not None and Recipe.from_yaml(recipe.to_yaml()) == recipe
    one = qat_only.with_epochs(1)  # QAT only: --epochs sets the QAT epochs, adds no recovery fine-tuning
    assert one.qat().epochs == 1 and one.finetune.epochs == 0
    both = pruned_qat.with_epochs(2)  # prune + recover, then QAT: both stages
    assert both.qat().epochs == 2 and both.finetune.epochs == 2 and both.pruning()[0].end_epoch < 2


def test_onnx_style_names_are_the_exporters(artifacts):
    """The float-head preset is applied to QAT convs by their ONNX names: they must be the exporter's."""
    import onnx
    import torch

    from posebench.compress.qat import onnx_style_names
    from posebench.ultralytics_adapter import load_yolo

    model = load_yolo(resolve_model(None).path).model.float().eval().fuse(verbose=False)
    convs = [name[: -len(".weight")] for name, p in model.named_parameters() if p.ndim == 4]
    names = onnx_style_names(model, torch.zeros(1, 3, *SMALL), convs)
    exported = {n.name for n in onnx.load(str(artifacts.get("onnx", SMALL))).graph.node if n.op_type == "Conv"}
    assert set(names.values()) == exported
    assert names["model.23.cv4.2.0.conv"] == "/model.23/cv4.2/cv4.2.0/conv/Conv"


@pytest.mark.train
def test_qat_without_training_data_is_refused(default_source, tmp_path):
    with pytest.raises(InvalidInputError, match="quantization-aware training needs data"):
        compress(default_source, Recipe.from_yaml(QAT), tmp_path)


@pytest.fixture(scope="module")
def pruned_qat_bundle(coco_pose_mini, default_source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("qat")
    pruning = Recipe.load(REPO / "recipes" / "yolo-pose-oneshot-p50.yaml")
    # labels plus distillation from the float (pruned) model: the QAT trainer takes the distillation loss
    recipe = replace(pruning, name="p50-qat", modifiers=pruning.modifiers + Recipe.from_yaml(QAT).modifiers,
                     distillation=Distillation(enabled=True))
    compress(default_source, recipe, out, options=CompressOptions(
        data=coco_pose_mini / "coco-pose-mini.yaml", imgsz=160, batch=8, cache_dir=out / "cache"))
    return out


@pytest.mark.slow
@pytest.mark.train
def test_qat_qdq_onnx_runs_on_every_cpu_runtime(pruned_qat_bundle, coco_pose_mini):
    import onnx

    from posebench.compress.quantize import calibration_batches
    from posebench.evaluate.validate import read_image

    bundle = json.loads((pruned_qat_bundle / "bundle.json").read_text())
    assert bundle["method"] == "qat" and bundle["precision"] == "int8" and bundle["imgsz"] == list(SMALL)
    graph = onnx.load(str(pruned_qat_bundle / bundle["artifacts"]["onnx"])).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("DequantizeLinear") > 150 and "QuantizeLinear" in ops
    meta = read_metadata(pruned_qat_bundle / bundle["artifacts"]["onnx"])["quantization"]
    assert meta["method"] == "qat" and meta["export_check"]["qdq_pairs"] >= meta["quantizers"] > 100
    assert meta["distillation"] is True
    trained = (pruned_qat_bundle / "qat").rglob("results.csv")  # the trainer logged the distillation terms
    assert any("kd_cls" in path.read_text().splitlines()[0] for path in trained)
    quantized = meta["quantized_nodes"]
    assert any(n.startswith("/model.0/") for n in quantized)
    assert not any("/model.23/cv4." in n for n in quantized)  # the float-head preset was applied
    assert any("/model.23/cv4." in n for n in meta["float_nodes"])
    store = ArtifactStore(resolve_model(pruned_qat_bundle), pruned_qat_bundle / "cache")
    image = read_image(sorted((coco_pose_mini / "images" / "val").iterdir())[0])
    batch = calibration_batches([image], SMALL, 1)[0]  # a real photo of people, letterboxed as in validation
    outputs = {}
    for runtime in ("onnxruntime", "openvino", "deepsparse"):  # deepsparse: the bundle's ConvInteger form
        cls = backend_class(runtime)
        with create_backend(runtime, store.get(cls.artifact_format, SMALL, prefer=cls.prefers), threads=2) as b:
            outputs[runtime] = b.infer(batch)[0]
    with create_backend("torch", pruned_qat_bundle / bundle["checkpoint"], threads=2) as b:
        reference = b.infer(batch)[0]  # the QAT-trained float weights, no quantizers
    for runtime, out in outputs.items():  # int8 is not bit-exact: boxes within a few pixels
        assert out.shape == reference.shape and np.isfinite(out).all()
        assert np.median(np.abs(out[:, :4] - reference[:, :4])) < 3.0, runtime
        assert np.median(np.abs(out[:, :4] - outputs["onnxruntime"][:, :4])) < 1.0, runtime


@pytest.mark.train
def test_pruned_qat_keeps_its_sparsity_in_the_int8_weights(pruned_qat_bundle):
    per_layer = {r["name"]: r for r in json.loads((pruned_qat_bundle / "sparsity.json").read_text())["per_layer"]}
    int8 = onnx_weight_sparsity(pruned_qat_bundle / "model-int8.onnx")  # int8 initializers, read from the file
    checked = [name for name in per_layer if name in int8 and per_layer[name]["zeros"] > 0]
    assert len(checked) > 50
    for name in checked:  # masks held during QAT; symmetric int8 weights keep zero exactly zero
        assert int8[name]["zeros"] >= per_layer[name]["zeros"], name
    assert read_metadata(pruned_qat_bundle / "model-int8.onnx")["quantization"]["sparse_tensors_held"] >= len(checked)
    total = sum(int8[n]["size"] for n in checked)
    assert sum(int8[n]["zeros"] for n in checked) / total >= 0.49
    # DeepSparse's form carries the same int8 weights, zeros included (ConvInteger weights, by conv name)
    import onnx

    graph = onnx.load(str(pruned_qat_bundle / "model-int8.onnx")).graph
    dq = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    weight_of = {f"{n.name}.weight": dq.get(n.input[1], "").removesuffix("_quantized") for n in graph.node
                 if n.op_type == "Conv"}
    form = onnx_weight_sparsity(pruned_qat_bundle / "model-int8-deepsparse.onnx")
    converted = [name for name in form if name in weight_of and weight_of[name] in int8]
    assert len(converted) > 50
    for name in converted:
        assert form[name] == int8[weight_of[name]], name
