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

# The public API: what scripts (benchmarks/, a user's own) import from `posebench` itself. Each name is imported from
# its module on first use, so `import posebench` stays cheap.
_API = {
    "Trial": "posebench.trial", "Evaluation": "posebench.trial", "Built": "posebench.trial",
    "Record": "posebench.record", "Identity": "posebench.record", "Failure": "posebench.record",
    "run_trial": "posebench.runner", "ResultStore": "posebench.results", "merge": "posebench.results",
    "latest_per_trial": "posebench.results", "resolve_model": "posebench.models",
    "BenchPlan": "posebench.bench", "run_bench": "posebench.bench", "ValPlan": "posebench.val",
    "run_val": "posebench.val", "LatencyProtocol": "posebench.latency", "Study": "posebench.study",
    "run_study": "posebench.study", "TunePlan": "posebench.tune",  # tune(): posebench.tune
    "Recipe": "posebench.compress.recipe", "CompressOptions": "posebench.compress.options",
    "build_report": "posebench.report.build",  # compress(): posebench.compress.run (the subpackage owns the name)
    "fingerprint": "posebench.machine.environment",
    # building blocks for a study of one's own (benchmarks/ uses these)
    "ArtifactStore": "posebench.export", "read_metadata": "posebench.export", "create_backend": "posebench.runtimes",
    "Predictor": "posebench.evaluate.validate", "validate": "posebench.evaluate.validate",
    "fidelity": "posebench.evaluate.validate", "pseudo_truth": "posebench.evaluate.validate",
    "iter_frames": "posebench.evaluate.validate", "load_dataset": "posebench.evaluate.data",
    "NMSConfig": "posebench.evaluate.postprocess", "FrameSource": "posebench.frame_source", "run_stream": "posebench.stream",
    "open_pipeline": "posebench.pipeline", "measure_in_child": "posebench.bench",
    "default_model_path": "posebench.models", "ran_as": "posebench.machine.environment",
}
__all__ = sorted(_API)


def __getattr__(name: str):  # noqa: ANN202 - PEP 562: the public API, imported when first used
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'posebench' has no attribute '{name}'")
