"""Models and artifacts: the Ultralytics seams posebench relies on, metadata, architecture YAMLs."""

from __future__ import annotations

import json

import pytest
from conftest import IMGSZ

from posebench.errors import InvalidInputError, ModelNotFoundError
from posebench.export import ArtifactStore, parse_imgsz, read_metadata
from posebench.models import default_model_path, resolve_model


def test_embedded_default_is_the_coco_trained_yolo11n_pose(default_source):
    assert default_model_path().name == "yolo11n-pose.pt" and default_model_path().is_file()
    assert default_source.kind == "checkpoint" and default_source.name == "yolo11n-pose"


def test_ultralytics_seams_we_rely_on():
    """If an Ultralytics upgrade moves these, this test says which seam broke."""
    import ultralytics
    from ultralytics import YOLO
    from ultralytics.nn.modules.head import Pose
    from ultralytics.nn.tasks import yaml_model_load

    model = YOLO(str(default_model_path()))
    assert model.task == "pose" and tuple(model.model.kpt_shape) == (17, 3)
    assert callable(model.export) and callable(model.save) and callable(model.model.fuse)
    assert isinstance(model.model.model[-1], Pose)
    assert yaml_model_load("yolov8s-pose.yaml")["kpt_shape"] == [17, 3]
    assert ultralytics.__version__ == "8.4.190"
    # YOLO26: the one-to-one head is `one2one_cv2`..., chosen with `end2end`, exported with `nms=False`,
    # Pose26 keeps `cv4_kpts`; a PoseModel takes `nc` to override the YAML's class count
    import inspect

    from ultralytics.engine.exporter import Exporter
    from ultralytics.nn.modules.head import Pose26
    from ultralytics.nn.tasks import PoseModel

    assert yaml_model_load("yolo26n-pose.yaml")["end2end"] is True
    net = PoseModel("yolo26n-pose.yaml", nc=1, verbose=False)
    head = net.model[-1]
    assert isinstance(head, Pose26) and head.nc == 1 and head.one2one_cv2 is not None and head.cv4_kpts is not None
    assert net.end2end is False  # one-to-many unless asked
    net.end2end = True
    assert head.end2end is True and "model.end2end = self.args.nms is False" in inspect.getsource(Exporter)


def test_ultralytics_adapter_seams(tmp_path):
    """Every Ultralytics attribute posebench.ultralytics_adapter (and the trainer callbacks through it) relies on."""
    import inspect
    import re

    import torch
    import ultralytics
    from ultralytics.engine.trainer import BaseTrainer

    from posebench import ultralytics_adapter as adapter

    assert ultralytics.__version__ == adapter.ULTRALYTICS_VERSION
    trainer_source = inspect.getsource(BaseTrainer)
    for name in adapter.TRAINER_ATTRIBUTES:  # read by the pruning / QAT callbacks and `finetune.train`
        assert re.search(rf"self\.{name}\b[^=\n]*=", trainer_source), name
    trainer = adapter.pose_trainer_class()
    assert callable(trainer.get_model) and callable(trainer.save_model) and "ema.ema" in inspect.getsource(BaseTrainer)
    for name in ("dynamic", "export", "format", "xyxy", "shape", "max_det"):  # what the ONNX export mode sets
        assert f"self.{name}" in inspect.getsource(adapter.detect_head_class()), name
    built = adapter.build_pose_model("yolo26n-pose.yaml", nc=1, seed=0)
    net, again = built.model, adapter.build_pose_model("yolo26n-pose.yaml", nc=1, seed=0).model
    assert built.model.names == {0: "person"} and net.model[-1].nc == 1
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), again.state_dict().values()))
    adapter.fold_batchnorm(net)  # BatchNorm gone, both branches of the end-to-end head kept (QAT trains both)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    head = net.model[-1]
    assert head.cv2 is not None and head.one2one_cv2 is not None and head.cv4_sigma is not None
    adapter.keep_one_head(net, end2end=True, max_det=100)  # what Ultralytics' exporter keeps for nms=False
    assert head.cv2 is None and head.one2one_cv2 is not None and head.end2end and head.max_det == 100
    adapter.set_onnx_export_mode(net)
    assert head.export and head.format == "onnx" and not head.dynamic
    with torch.no_grad():
        assert net.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 84, 6 + 17 * 3)  # (64/8)^2+(64/16)^2+(64/32)^2
    assert adapter.knows_yaml("yolov8s-pose.yaml") and not adapter.knows_yaml("no-such-model.yaml")


def test_onnx_artifact_describes_itself(artifacts):
    import onnx

    path = artifacts.get("onnx", IMGSZ)
    meta = read_metadata(path)
    assert meta["imgsz"] == list(IMGSZ) and meta["kpt_shape"] == [17, 3] and meta["precision"] == "fp32"
    assert meta["input_shape"] == [1, 3, *IMGSZ]
    assert 0 <= meta["sparsity"] < 0.01  # a dense COCO-trained model
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(props["posebench.imgsz"]) == list(IMGSZ)
    assert props["kpt_shape"] == "[17, 3]"  # Ultralytics' own metadata is kept
    assert artifacts.get("onnx", IMGSZ) == path  # cached, not rebuilt


def test_openvino_artifact_has_metadata(artifacts):
    path = artifacts.get("openvino", IMGSZ)
    assert path.suffix == ".xml" and path.with_suffix(".bin").is_file()
    assert read_metadata(path)["format"] == "openvino"


def test_architecture_yaml_builds_reproducible_random_weights(tmp_path):
    source = resolve_model("yolov8n-pose.yaml")
    assert source.kind == "yaml"
    a, b = ArtifactStore(source, tmp_path / "a"), ArtifactStore(source, tmp_path / "b")
    import torch

    wa = torch.load(a.checkpoint(), weights_only=False)["model"].state_dict()
    wb = torch.load(b.checkpoint(), weights_only=False)["model"].state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    meta = read_metadata(a.get("onnx", (64, 96)))
    assert meta["source_kind"] == "yaml" and meta["output_shapes"][0][1] == 56


def test_detection_model_is_refused(tmp_path):
    with pytest.raises(InvalidInputError, match="not a pose model"):
        ArtifactStore(resolve_model("yolov8n.yaml"), tmp_path).checkpoint()


@pytest.mark.parametrize("text,expected", [("640", (640, 640)), ("384,640", (384, 640)), ("384x640", (384, 640)),
                                           (320, (320, 320))])
def test_imgsz_is_height_width(text, expected):
    assert parse_imgsz(text) == expected


@pytest.mark.parametrize("text", ["100", "0", "-32", "640,100", "1,2,3"])
def test_bad_imgsz(text):
    with pytest.raises(InvalidInputError):
        parse_imgsz(text)


def test_missing_model(tmp_path):
    with pytest.raises(ModelNotFoundError):
        resolve_model(tmp_path / "absent.pt")


def _shipped() -> list[str]:
    from posebench.models import shipped_models

    return sorted(shipped_models())


def test_models_ship_with_the_repository():
    assert _shipped(), "models/ holds no shipped model (a folder with model.pt and card.yaml)"


@pytest.mark.parametrize("name", _shipped())
def test_a_shipped_model_loads_by_name_and_matches_its_card(name):
    """`--model NAME` finds models/NAME/model.pt; its bytes, conv MACs at 640 and parameter count are the card's."""
    import yaml

    from posebench.compress.channel_groups import conv_macs
    from posebench.models import file_sha256
    from posebench.ultralytics_adapter import load_yolo

    source = resolve_model(name)
    assert source.kind == "checkpoint" and source.name == name and source.path.name == "model.pt"
    card = yaml.safe_load((source.path.parent / "card.yaml").read_text())
    assert card["name"] == name and file_sha256(source.path) == card["sha256"]
    net = load_yolo(source.path).model.float()
    assert sum(p.numel() for p in net.parameters()) == card["parameters"]
    assert conv_macs(net, (640, 640)) == card["conv_macs_640"]
    dense = load_yolo(default_model_path()).model.float()
    assert card["macs_kept"] == pytest.approx(card["conv_macs_640"] / conv_macs(dense, (640, 640)), abs=1e-4)
    assert 0 < card["accuracy"]["fp32"]["pose_map50_95"] <= 1 and card["accuracy"]["fp32"]["images"] == 750


def test_an_unknown_name_lists_the_shipped_models(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no file of that name here
    names = _shipped()
    with pytest.raises(ModelNotFoundError, match="Shipped models"):
        resolve_model((names[0] + "x") if names else "no-such-model")


def test_posebench_models_lists_every_card_with_its_speed_rows(tmp_path):
    """`posebench models`: one entry per shipped model, its MACs, accuracy and every speed row of its card, by
    CPU kind; `--json` gives the cards as read."""
    import yaml
    from conftest import run_here

    from posebench.machine.isa import CPU_KINDS
    from posebench.models import shipped_models

    result = run_here("models", "--json", str(tmp_path / "models.json"))
    assert result.returncode == 0, result.stderr
    cards = json.loads((tmp_path / "models.json").read_text())
    assert [c["name"] for c in cards] == sorted(shipped_models())
    for card in cards:
        raw = yaml.safe_load((shipped_models()[card["name"]] / "card.yaml").read_text())
        assert raw["speed"] and isinstance(raw["speed"], list), "a card's speed is a list of rows, one per CPU kind"
        assert card["speed"] == raw["speed"]
        assert f"{card['name']}: {raw['macs_kept']:.1%} of the conv MACs" in result.stdout
        assert f"fp32 {raw['accuracy']['fp32']['pose_map50_95']:.3f}" in result.stdout
        for row in raw["speed"]:
            assert row["kind"] in CPU_KINDS and row["threads"] >= 1 and row["machine"]
            for deployment, ratio in row["x_ultralytics_int8"].items():
                assert f"{deployment} {ratio:.2f}x" in result.stdout


def test_posebench_models_shows_one_card_and_names_a_near_miss():
    from conftest import run_here

    name = _shipped()[0]
    one = run_here("models", name)
    assert one.returncode == 0 and f"name: {name}" in one.stdout and "x_ultralytics_int8" in one.stdout
    wrong = run_here("models", name + "x")
    assert wrong.returncode == 2 and f'Did you mean "{name}"' in wrong.stderr and "Shipped models" in wrong.stderr


def test_a_card_speed_row_without_its_kind_is_refused():
    from posebench.models import speed_rows

    assert speed_rows({"speed": {"machine": "old", "x_ultralytics_int8": {"int8": 1.1}}})[0]["kind"] == "unlabelled"
    with pytest.raises(InvalidInputError, match="needs 'kind'"):
        speed_rows({"name": "x", "speed": [{"machine": "m", "x_ultralytics_int8": {"int8": 1.1}}]})
