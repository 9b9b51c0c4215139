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


def test_every_public_name_is_the_thing_its_module_defines():
    """`from posebench import X` gives X as its module defines it, in any order of imports: a public name that is
    also a subpackage's name (posebench.compress) would be shadowed by the subpackage once anything under it is
    imported, so the API holds none."""
    import importlib

    import posebench

    for name, module in posebench._API.items():
        importlib.import_module(module)
    for name, module in posebench._API.items():
        assert getattr(posebench, name) is getattr(importlib.import_module(module), name), name
