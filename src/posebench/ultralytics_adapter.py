"""The Ultralytics adapter: the one module that imports Ultralytics.

Everything posebench needs from Ultralytics goes through here: loading and building pose models, their heads,
the exporter (posebench's fp32 exports and a user's `yolo export` line), the pose trainer class QAT subclasses,
and the trainer attributes the pruning callbacks read (`TRAINER_ATTRIBUTES`). An Ultralytics upgrade breaks this
file, and `tests/test_models.py::test_ultralytics_seams_we_rely_on` pins every attribute it relies on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from posebench.errors import InvalidInputError, ModelLoadError, ModelNotFoundError

ULTRALYTICS_VERSION = "8.4.190"  # the pinned release the seams are tested against
# what the pruning / QAT callbacks read from the trainer they are handed (see posebench.compress.finetune)
TRAINER_ATTRIBUTES = ("model", "ema", "epoch", "start_epoch", "train_loader", "callbacks", "last", "world_size")


@contextmanager
def openvino_as_the_capped_cpu() -> Iterator[None]:
    """While open, under a oneDNN ISA cap without bf16 (`ONEDNN_MAX_CPU_ISA=AVX2`), OpenVINO compiles get the f32
    precision hint. Ultralytics passes none: OpenVINO then picks bf16 from the CPU's own flags, and bf16 kernels do
    not exist under the cap (the compile fails), where a CPU without bf16 picks f32 itself. Open it around the call
    that loads an Ultralytics OpenVINO model (its first predict or val); without a cap it changes nothing."""
    from posebench.machine.cpu import bf16_arithmetic, cpu_flags, onednn_isa_cap

    if onednn_isa_cap() is None or bf16_arithmetic(cpu_flags()):
        yield
        return
    import openvino as ov

    compile_model = ov.Core.compile_model

    def in_f32(self: Any, model: Any, device_name: Any = None, config: dict | None = None) -> Any:
        return compile_model(self, model, device_name, {**(config or {}), "INFERENCE_PRECISION_HINT": "f32"})

    ov.Core.compile_model = in_f32
    try:
        yield
    finally:
        ov.Core.compile_model = compile_model


def knows_yaml(name: str) -> bool:
    """Whether `name` is one of the architecture YAMLs Ultralytics ships (yolov8s-pose.yaml, yolo26n-pose.yaml)."""
    from ultralytics.nn.tasks import yaml_model_load

    try:
        yaml_model_load(name)
    except (FileNotFoundError, OSError):
        return False
    return True


def load_yolo(path: str | os.PathLike) -> Any:
    """Load a checkpoint or YAML with `ultralytics.YOLO`, requiring a pose model."""
    from ultralytics import YOLO

    try:
        model = YOLO(str(path))
    except FileNotFoundError as exc:
        raise ModelNotFoundError(f"model '{path}' not found: {exc}") from exc
    except Exception as exc:  # torch.load / YAML parsing raise many types for a bad file
        raise ModelLoadError(f"'{path}' is not a loadable Ultralytics model ({type(exc).__name__}: {exc}). "
                             "Is the file complete and an Ultralytics .pt or model YAML?") from exc
    kpt_shape = getattr(model.model, "kpt_shape", None) or model.model.yaml.get("kpt_shape")
    if model.task != "pose" or kpt_shape is None:
        raise InvalidInputError(f"'{path}' is a {model.task} model, not a pose model (no kpt_shape); "
                                "posebench needs an Ultralytics pose model such as yolo11n-pose")
    return model


def has_one2one_head(net: Any) -> bool:
    """Whether the network's head has an NMS-free one-to-one branch (YOLO26's `end2end` heads)."""
    return getattr(net.model[-1], "one2one_cv2", None) is not None


def use_end2end(net: Any, head: str) -> bool:
    """The head posebench exports and runs: end-to-end (NMS-free) wherever the model has one, unless asked for
    the one-to-many head; asking for end2end on a model without it is an error."""
    capable = has_one2one_head(net)
    if head == "end2end" and not capable:
        raise InvalidInputError("head=end2end: this model has no one-to-one (NMS-free) head; only YOLO26-style "
                                "end2end models have one")
    return capable and head != "one2many"


def load_torch_model(checkpoint: str | os.PathLike, *, end2end: bool | None = None) -> Any:
    """The checkpoint's network as an fp32 eval-mode torch module with BatchNorm folded (as exported), running
    the one-to-one head (end2end, output (1, max_det, 6 + K*D)) or the one-to-many head (1, 4 + nc + K*D, anchors);
    None: end2end where the model has a one-to-one head."""
    model = load_yolo(checkpoint).model.float()
    if has_one2one_head(model):
        model.end2end = True if end2end is None else end2end
    elif end2end:
        raise InvalidInputError(f"{checkpoint} has no one-to-one head to run end-to-end")
    model = model.fuse() if hasattr(model, "fuse") else model
    return model.eval()


def describe(checkpoint: str | os.PathLike) -> dict[str, Any]:
    """Task, keypoint shape, class names, parameter count and conv-weight sparsity of a checkpoint."""
    import torch

    net = load_yolo(checkpoint).model
    weights = [m.weight for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    total = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    kpt_shape = list(getattr(net, "kpt_shape", None) or net.yaml.get("kpt_shape"))
    return {"task": "pose", "kpt_shape": kpt_shape, "names": dict(getattr(net, "names", {}) or {}),
            "one2one_head": has_one2one_head(net), "nc": int(net.model[-1].nc),
            "parameters": int(sum(p.numel() for p in net.parameters())),
            "conv_sparsity": zeros / total if total else 0.0}


def export_onnx(checkpoint: Path, *, imgsz: tuple[int, int], opset: int = 17, end2end: bool = False) -> Path:
    """Export a static batch-1 fp32 ONNX with Ultralytics' exporter; returns the written file.

    opset 17 / IR 8 is accepted by every runtime here, DeepSparse 1.8 (onnx<1.15) included. `end2end` exports the
    one-to-one head as Ultralytics does with `nms=False`: output (1, max_det, 6 + K*D) = x1, y1, x2, y2, score,
    class, keypoints, top-k already applied (no NMS needed).
    """
    model = load_yolo(checkpoint)
    extra = {"nms": False} if end2end else {}
    out = model.export(format="onnx", imgsz=list(imgsz), dynamic=False, simplify=True, opset=opset,
                       batch=1, **extra)
    return Path(out)


def export_openvino(checkpoint: Path, *, imgsz: tuple[int, int], end2end: bool = False) -> Path:
    """An fp32 OpenVINO IR straight from torch with Ultralytics' exporter (its `yolo export format=openvino`);
    returns the .xml. Used for end-to-end heads: their top-k gathers (GatherElements on a column slice) convert
    from torch but not from ONNX, whose OpenVINO reader folds the slice away and then rejects the gather."""
    model = load_yolo(checkpoint)
    extra = {"nms": False} if end2end else {}
    folder = Path(model.export(format="openvino", imgsz=list(imgsz), dynamic=False, half=False, int8=False,
                               batch=1, **extra))
    return next(folder.glob("*.xml"))


def export_ultralytics(checkpoint: Path, *, fmt: str, imgsz: tuple[int, int], int8: bool = False,
                       data: Path | None = None) -> Path:
    """What `yolo export format=FMT [int8=True data=DATA]` writes for this checkpoint, with Ultralytics' own
    defaults otherwise (static batch-1 input; for YOLO26 that is the one-to-many head, as a user gets it): the
    .onnx file or the `*_openvino_model` folder, beside the checkpoint."""
    model = load_yolo(checkpoint)
    args: dict[str, Any] = {"format": fmt, "imgsz": list(imgsz), "batch": 1, "dynamic": False}
    if int8:
        args.update(int8=True, data=str(data))
    return Path(model.export(**args))


def build_pose_model(location: str, *, nc: int, seed: int) -> Any:
    """An `ultralytics.YOLO` pose model built from an architecture YAML with `seed`, with `nc` classes (Ultralytics'
    pose YAMLs (11, 12, 26) say nc: 80; a pose model has 1 class, named person)."""
    import copy

    import torch

    torch.manual_seed(seed)
    model = load_yolo(location)
    if model.model.yaml.get("nc") != nc:
        torch.manual_seed(seed)
        net = type(model.model)(copy.deepcopy(model.model.yaml), nc=nc, verbose=False)
        net.args, net.task = model.model.args, model.model.task
        model.model = net
    if nc == 1:
        model.model.names = {0: "person"}
    return model


def pose_trainer_class() -> type:
    """Ultralytics' `PoseTrainer` (QAT subclasses it: `get_model`, `save_model`, `ema`, `world_size`)."""
    from ultralytics.models.yolo.pose import PoseTrainer

    return PoseTrainer


def detect_head_class() -> type:
    """The base class of every Ultralytics detection head (Pose and Pose26 derive from it)."""
    from ultralytics.nn.modules import Detect

    return Detect


def set_onnx_export_mode(net: Any) -> None:
    """Put every head of `net` in the state Ultralytics' exporter gives it for a static ONNX export (nms=False)."""
    for m in net.modules():
        if isinstance(m, detect_head_class()):
            m.dynamic, m.export, m.format, m.xyxy, m.shape = False, True, "onnx", False, None


def keep_one_head(net: Any, *, end2end: bool, max_det: int) -> None:
    """Keep the head branch that is exported, as Ultralytics' exporter does with `nms=False`: an end-to-end head's
    one-to-one branch (top-k of `max_det` detections, no NMS) or its one-to-many branch; the other branch and the
    training-only layers (Pose26's sigma convs and flow model) are dropped."""
    head = net.model[-1]
    if not has_one2one_head(net):
        if end2end:
            raise InvalidInputError("this model has no one-to-one head to export end to end")
        return
    head.end2end = end2end
    head.max_det = max_det
    head.fuse()


def fold_batchnorm(net: Any) -> Any:
    """Ultralytics' `fuse()` (BatchNorm folded into the convolutions) with the head left whole: its own `fuse`
    drops a branch, and an end-to-end head (YOLO26) trains both."""
    head = net.model[-1]
    head.fuse = lambda: None  # an instance attribute shadows the method for this one call
    try:
        net.fuse(verbose=False)
    finally:
        del head.fuse
    return net


def differs_from_its_yaml(model: Any) -> bool:
    """Whether a network's tensors differ in shape from what its own YAML builds (a channel-pruned checkpoint):
    Ultralytics' trainer would rebuild it from the YAML and keep only the tensors whose shapes match."""
    import copy

    fresh = type(model)(copy.deepcopy(model.yaml), nc=model.model[-1].nc, verbose=False).state_dict()
    mine = model.state_dict()
    return fresh.keys() != mine.keys() or any(fresh[k].shape != v.shape for k, v in mine.items())


def trainer_for(model: Any) -> type:
    """A PoseTrainer class that trains `model` itself. Ultralytics' own trainer rebuilds the network from its YAML
    and copies the weights whose shapes match: a channel-pruned model would come back unpruned and random."""

    class OwnModelTrainer(pose_trainer_class()):
        def get_model(self, cfg: Any = None, weights: Any = None, verbose: bool = True) -> Any:
            return model

    return OwnModelTrainer


def ultralytics_predict_model(artifact: Path, meta: dict[str, Any], workdir: Path) -> Any:
    """`ultralytics.YOLO` on a deployed artifact, for timing Ultralytics' own `predict` pipeline around it: a
    checkpoint, an ONNX file, or an OpenVINO IR. An artifact Ultralytics did not write (posebench's own IR or int8
    ONNX) gets the metadata Ultralytics reads (task, stride, imgsz, names, kpt_shape) from posebench's sidecar: an
    IR folder is linked into `workdir` with a `metadata.yaml`, an ONNX file copied there with metadata props."""
    import yaml
    from ultralytics import YOLO

    artifact = Path(artifact)
    info = {"task": "pose", "stride": 32, "batch": 1, "channels": 3, "imgsz": list(meta["imgsz"]),
            "names": {i: n for i, n in enumerate(meta.get("names") or ["person"])} if isinstance(
                meta.get("names"), list) else (meta.get("names") or {0: "person"}),
            "kpt_shape": list(meta["kpt_shape"]), "end2end": bool(meta.get("end2end")),
            "args": {"nms": None, "dynamic": False, "batch": 1}}
    if artifact.suffix == ".pt":
        return YOLO(str(artifact), task="pose")
    if artifact.suffix == ".xml":
        if (artifact.parent / "metadata.yaml").is_file():
            return YOLO(str(artifact.parent), task="pose")
        folder = workdir / f"{artifact.stem}_openvino_model"
        folder.mkdir(parents=True, exist_ok=True)
        for suffix in (".xml", ".bin"):
            link = folder / f"{artifact.stem}{suffix}"
            if not link.exists():
                link.symlink_to(artifact.with_suffix(suffix).resolve())
        (folder / "metadata.yaml").write_text(yaml.safe_dump(info, sort_keys=False))
        return YOLO(str(folder), task="pose")
    if artifact.suffix == ".onnx":
        import onnx

        model = onnx.load(str(artifact))
        if not any(p.key == "kpt_shape" for p in model.metadata_props):
            for key, value in info.items():
                entry = model.metadata_props.add()
                entry.key, entry.value = key, str(value)
            artifact = workdir / artifact.name
            onnx.save(model, str(artifact))
        return YOLO(str(artifact), task="pose")
    raise InvalidInputError(f"{artifact}: Ultralytics' predict pipeline runs a .pt, an .onnx or an OpenVINO IR here")


def installed_version() -> str:
    """The Ultralytics version installed (what a record of its pipeline states)."""
    import ultralytics

    return ultralytics.__version__


def assets_dir() -> Path:
    """The images that ship with Ultralytics (bus.jpg, zidane.jpg)."""
    from ultralytics.utils import ASSETS

    return Path(ASSETS)


def default_cfg(overrides: dict[str, Any] | None = None) -> Any:
    """Ultralytics' default settings with `overrides` (a loss reads its gains from them)."""
    from ultralytics.cfg import get_cfg

    return get_cfg(overrides=overrides)


def labelled_batches(data: Path, *, size: int, batch: int, limit: int) -> list[dict]:
    """Up to `limit` labelled batches of a data YAML's train split, as Ultralytics' trainer feeds them (letterboxed
    to `size` x `size`, no augmentation, images in 0-1)."""
    from ultralytics.data import build_dataloader, build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset

    try:
        spec = check_det_dataset(str(data))
    except Exception as exc:  # Ultralytics raises several kinds for a bad data YAML
        raise InvalidInputError(f"needs a labelled data YAML (--data): {data}: {exc}") from None
    cfg = default_cfg({"task": "pose", "imgsz": size, "rect": False, "cache": False, "fraction": 1.0})
    dataset = build_yolo_dataset(cfg, spec["train"], batch, spec, mode="val")
    loader = build_dataloader(dataset, batch, workers=0, shuffle=False, pin_memory=False, device="cpu")
    out = []
    for item in loader:
        item["img"] = item["img"].float() / 255
        out.append(item)
        if len(out) >= limit:
            break
    return out

