"""Importing posebench (and its CLI) must not import torch, Ultralytics or any runtime."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ["torch", "ultralytics", "onnxruntime", "openvino", "onnx", "cv2", "tensorrt"]


def test_import_is_lean():
    code = ("import sys, posebench, posebench.cli, posebench.runtimes, posebench.latency, posebench.results; "
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_is_fast_and_lists_commands():
    out = subprocess.run([sys.executable, "-m", "posebench", "--help"], capture_output=True, text=True, check=True)
    assert "bench" in out.stdout
    out = subprocess.run([sys.executable, "-m", "posebench", "bench", "--help"], capture_output=True, text=True,
                         check=True)
    assert "--min-seconds" in out.stdout and "--threads" in out.stdout
