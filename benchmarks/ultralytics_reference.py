"""Ultralytics' own OpenVINO int8 export of the embedded model: the reference our int8 artifacts race."""

from __future__ import annotations

import shutil
from pathlib import Path

from posebench.models import default_model_path, load_yolo


def ultralytics_openvino_int8(work: Path, calibration_yaml: Path, imgsz: int = 640) -> Path:
    """`YOLO.export(format="openvino", quantize=8)` calibrated on the YAML's val split; returns the IR .xml."""
    pt = work / "ultralytics" / "yolo11n-pose.pt"  # a copy: Ultralytics writes the export beside the weights
    pt.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(default_model_path(), pt)
    exported = Path(load_yolo(pt).export(format="openvino", quantize=8, data=str(calibration_yaml), split="val",
                                         imgsz=imgsz, batch=1))
    return next(exported.glob("*.xml"))
