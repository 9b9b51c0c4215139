"""The `ultralytics_export` method: Ultralytics' own `yolo export` of the (pruned, fine-tuned) model, so a study
shows posebench's artifacts side by side with what one `yolo export` line gives a user.

A method in the registered shape (`posebench.compress.methods`): its modifier (the recipe keys are its fields, the
defaults its defaults, the checks its `__post_init__`; the recipe parser needs no code for it) and its stage."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posebench.compress.modifiers import SettingError

EXPORT_FORMATS = ("openvino", "onnx")


@dataclass(frozen=True)
class UltralyticsExport:
    """The peer's artifact: Ultralytics' own `yolo export` of the (pruned, fine-tuned) model, so a study shows
    posebench's artifacts side by side with what one `yolo export` line gives a user."""

    type: str = "ultralytics_export"
    format: str = "openvino"  # openvino | onnx
    int8: bool = False  # openvino: Ultralytics' NNCF int8 PTQ (`yolo export format=openvino int8=True`)
    imgsz: tuple[int, ...] = (640, 640)  # static (height, width); a study sets its own
    calibration_source: str | None = None  # int8: images folder or video; CLI --calib / a study's calibration
    calibration_images: int = 128

    def __post_init__(self) -> None:
        if self.format not in EXPORT_FORMATS:
            raise SettingError("format", f"must be one of {', '.join(EXPORT_FORMATS)}, got {self.format!r}")
        if self.int8 and self.format != "openvino":
            raise SettingError("int8", "Ultralytics' int8 export is compared for format: openvino")
        if not 1 <= self.calibration_images <= 100000:
            raise SettingError("calibration_images", f"{self.calibration_images} is outside [1, 100000]")


def export_stage(run: Any, modifiers: list[UltralyticsExport]) -> None:
    """Ultralytics' own export of the saved checkpoint (`run`: a `CompressRun`; the recipe's one export)."""
    from posebench.compress.images import calibration_dataset, calibration_frames, calibration_source
    from posebench.compress.run_state import CompressResult, timed
    from posebench.export.peer import ultralytics_export

    (export,) = modifiers
    run.say(f"Ultralytics' own {export.format}{' int8' if export.int8 else ''} export at "
            f"{export.imgsz[0]}x{export.imgsz[1]}")
    with timed(run, "ultralytics_export_s"):
        data_yaml = None
        if export.int8:
            frames = calibration_frames(calibration_source(export, run.options), export.calibration_images)
            data_yaml = calibration_dataset((("", image) for image in frames), run.out_dir / "calibration",
                                            tuple(run.model.kpt_shape))
        artifact = ultralytics_export(Path(run.summary["checkpoint"]), fmt=export.format, imgsz=tuple(export.imgsz),
                                      int8=export.int8, data=data_yaml)
    run.summary["export"] = {"path": artifact.meta["source"], "format": export.format, "int8": export.int8,
                             "imgsz": list(export.imgsz), "tool": "ultralytics", "precision": artifact.precision,
                             "end2end": artifact.meta["end2end"]}
    run.result = CompressResult("export", str(artifact.meta["source"]))
