"""`run_trial(trial, built) -> Record`: one trial, run where this process is (a study's local loop, a tune, a Dask
worker), or recorded as a failure with its reason (its variant did not build, no GPU here, the cluster lost it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from posebench.record import Failure, Record
from posebench.trial import Built, Trial
from posebench.what_ran import unknown_identity


def failed(trial: Trial, failure: Failure, environment: dict[str, Any] | None, **fields: Any) -> Record:
    """The record of a trial that did not run (skipped: no GPU here; error: its variant did not build, its worker
    vanished...). What ran is unknown: no artifact (format '-')."""
    ran = unknown_identity(trial)
    evaluation = {"name": trial.evaluation.name} if trial.evaluation else None
    return Record(trial.kind, trial.id, ran, failure=failure, environment=environment,
                  study=trial.study or None, round=trial.round if trial.kind == "latency" else None,
                  target=trial.target, evaluation=evaluation).with_fields(**fields)


def gpu_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def run_trial(trial: Trial, built: Built, *, cache: Path, environment: dict[str, Any],
              reference: Built | None = None) -> Record:
    """Run one trial on the model `built` for it (an accuracy trial against a reference variant also gets that
    variant's `reference`); returns its record, a failure record when it cannot run."""
    if built.error or built.spec is None:
        return failed(trial, Failure.error(built.error or "its model was not built"), environment)
    if trial.gpu and not gpu_available():
        return failed(trial, Failure.skipped("skipped: no GPU on this machine"), environment)
    if trial.kind == "latency":
        return _latency(trial, built.spec, cache)
    evaluation = trial.evaluation
    assert evaluation is not None
    if evaluation.data is None and (reference is None or reference.spec is None):
        return failed(trial, Failure.error(f"reference variant '{evaluation.reference}' is not built"), environment)
    return _accuracy(trial, built.spec, reference.spec if reference else None, cache)


def _source(spec: str) -> Any:
    from posebench.models import resolve_model

    return resolve_model(None if spec == "default" else spec)


def _latency(trial: Trial, spec: str, cache: Path) -> Record:
    from posebench.bench import BenchPlan, run_bench

    plan = BenchPlan(source=_source(spec), runtimes=(trial.runtime,), threads=(trial.threads,), imgsz=trial.imgsz,
                     protocol=trial.protocol, variant=trial.variant, cache_dir=cache, model_name=trial.name,
                     mode=trial.mode, frames=trial.frames if trial.mode == "e2e" else None, pipeline=trial.pipeline)
    (record,) = run_bench(plan, None, trial=trial)
    return record


def _accuracy(trial: Trial, spec: str, reference: str | None, cache: Path) -> Record:  # reference: None with labels
    from posebench.evaluate.postprocess import NMSConfig
    from posebench.val import ValPlan, run_val

    ev = trial.evaluation
    assert ev is not None
    against: dict[str, Any] = ({"data": ev.data, "split": ev.split} if ev.data is not None else
                               {"reference": _source(reference), "reference_runtime": ev.reference_runtime,
                                "frames": ev.source, "max_frames": ev.max_frames, "first_frame": ev.first_frame,
                                "reference_imgsz": ev.reference_imgsz})
    plan = ValPlan(source=_source(spec), runtimes=(trial.runtime,), imgsz=trial.imgsz, threads=trial.threads,
                   nms=NMSConfig(), variant=trial.variant, cache_dir=cache, model_name=trial.name, **against)
    (record,) = run_val(plan, None, trial=trial)
    return record
