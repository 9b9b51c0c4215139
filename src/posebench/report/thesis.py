"""The thesis's published numbers (YOLOv8s-pose, COCO-pose val, imgsz 512), as an external reference.

Table 4.1 (box and pose P, R, mAP50, mAP50-95) and Table 4.2 (batch-1 latency, ms; AMD Genoa 8/15/30
cores with DeepSparse, NVIDIA Jetson AGX Orin 64GB with TensorRT / ONNX Runtime). Shown in reports
only when asked for, and always labelled as the thesis's, never mixed with measured rows.
"""

ACCURACY = {  # variant: (box P, R, mAP50, mAP50-95, pose P, R, mAP50, mAP50-95)
    "sml-base": (0.873, 0.838, 0.920, 0.721, 0.859, 0.776, 0.837, 0.575),
    "sml-int8": (0.823, 0.714, 0.824, 0.562, 0.743, 0.562, 0.586, 0.256),
    "sml-p50": (0.878, 0.810, 0.910, 0.701, 0.850, 0.739, 0.796, 0.502),
    "sml-p50-int8": (0.876, 0.827, 0.914, 0.705, 0.839, 0.759, 0.806, 0.510),
    "sml-p55": (0.882, 0.829, 0.917, 0.715, 0.857, 0.765, 0.823, 0.548),
    "sml-p55-int8": (0.885, 0.819, 0.917, 0.710, 0.853, 0.761, 0.817, 0.522),
    "sml-p55-int8-m": (0.870, 0.821, 0.909, 0.699, 0.837, 0.742, 0.796, 0.486),
    "sml-p65": (0.884, 0.815, 0.910, 0.702, 0.840, 0.751, 0.799, 0.505),
    "sml-p65-int8": (0.864, 0.830, 0.911, 0.699, 0.847, 0.751, 0.803, 0.499),
    "sml-p70": (0.873, 0.848, 0.919, 0.716, 0.833, 0.784, 0.822, 0.552),
    "sml-p70-int8": (0.864, 0.840, 0.917, 0.710, 0.848, 0.759, 0.818, 0.522),
    "sml-p70-int8-m": (0.873, 0.827, 0.912, 0.702, 0.842, 0.757, 0.810, 0.497),
    "trt-base": (0.873, 0.838, 0.920, 0.721, 0.859, 0.777, 0.837, 0.575),
    "trt-fp16": (0.875, 0.836, 0.919, 0.721, 0.858, 0.776, 0.837, 0.574),
    "trt-int8": (0.820, 0.654, 0.778, 0.447, 0.810, 0.601, 0.681, 0.406),
    "onnx": (0.873, 0.838, 0.920, 0.721, 0.859, 0.776, 0.837, 0.575),
}
LATENCY_MS = {  # variant: {configuration: ms}
    "sml-base": {"8-core": 2.759, "15-core": 2.037, "30-core": 1.269},
    "sml-int8": {"8-core": 0.778, "15-core": 0.629, "30-core": 0.399},
    "sml-p50": {"8-core": 2.272, "15-core": 1.772, "30-core": 1.139},
    "sml-p50-int8": {"8-core": 0.892, "15-core": 0.728, "30-core": 0.508},
    "sml-p55": {"8-core": 2.204, "15-core": 1.733, "30-core": 1.106},
    "sml-p55-int8": {"8-core": 0.762, "15-core": 0.671, "30-core": 0.483},
    "sml-p55-int8-m": {"8-core": 0.765, "15-core": 0.664, "30-core": 0.480},
    "sml-p65": {"8-core": 1.845, "15-core": 1.471, "30-core": 0.933},
    "sml-p65-int8": {"8-core": 0.830, "15-core": 0.745, "30-core": 0.537},
    "sml-p70": {"8-core": 1.893, "15-core": 1.565, "30-core": 1.036},
    "sml-p70-int8": {"8-core": 0.984, "15-core": 0.894, "30-core": 0.651},
    "sml-p70-int8-m": {"8-core": 1.007, "15-core": 0.892, "30-core": 0.650},
    "trt-base": {"GPU": 0.714}, "trt-fp16": {"GPU": 0.509}, "trt-int8": {"GPU": 0.371}, "onnx": {"GPU": 1.616},
}

# Work per inference of YOLOv8s-pose at 512x512: 2 x multiply-accumulates of its Conv/MatMul nodes, counted by
# `posebench.machine.roofline.count_ops` on posebench's ONNX export of yolov8s-pose.yaml (tests/test_roofline.py checks it).
YOLOV8S_POSE_512_GOPS = 19.319


def work_gops(variant: str) -> dict[str, object]:
    """The least work a thesis variant could do per inference: dense ops, minus the pruned share (DeepSparse skips
    zeros; the whole model is counted at the variant's sparsity, the most generous reading)."""
    import re

    match = re.search(r"-p(\d+)", variant)
    sparsity = int(match.group(1)) / 100 if match else 0.0
    why = f"{YOLOV8S_POSE_512_GOPS:.2f} dense" + (f" x (1 - {sparsity:.2f}) zeros skipped" if sparsity else "")
    return {"ops": YOLOV8S_POSE_512_GOPS * (1 - sparsity), "why": why}
