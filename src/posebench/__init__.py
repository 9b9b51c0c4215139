"""posebench: compress, export, run, validate and time Ultralytics pose models on every runtime.

Importing the package is cheap: heavy libraries (torch, ultralytics, runtimes) are imported by the
modules that use them, when they are used.
"""

import os

# ONNX Runtime 1.32 records telemetry events (a SQLite store under ~/.cache/Microsoft, and upload attempts) from
# inside the process being timed; once, offline, a `posebench bench` process then took ten minutes to exit.
# posebench measures, so it switches that off for itself and every process it starts (set it to 0 to keep it).
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
# Ultralytics probes the internet at import and offers to pip-install missing packages; posebench installs
# everything up front and works offline, so that is switched off before anything imports it.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")

__version__ = "0.1.0"
