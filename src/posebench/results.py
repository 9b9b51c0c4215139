"""Result records and the append-only store they live in.

A store is a JSON-lines file: one record per line, appended, flushed and fsync'ed as soon as it
exists, so a crash loses at most the line being written (which `read` skips with a warning).
Stores from several machines are merged by record id.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
import warnings
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


def trial_id(trial: dict[str, Any]) -> str:
    """Stable id of a trial's identity (model, variant, runtime, threads, imgsz...): same trial, same id."""
    return hashlib.sha256(json.dumps(trial, sort_keys=True).encode()).hexdigest()[:16]


def make_trial(*, model: str, source_id: str, variant: str, runtime: str, threads: int,
               imgsz: tuple[int, int] | list[int], fmt: str, precision: str = "fp32",
               options: dict[str, Any] | None = None, mode: str = "model",
               pipeline: dict[str, Any] | None = None) -> dict[str, Any]:
    """The identity of a trial: what was run, not what came out. Latency and accuracy records of the
    same trial share it, so reports can join them. `options` are the runtime options that change what runs
    (provider, precision, flush-to-zero, streams; only non-default ones, so default trials keep their ids).
    An end-to-end trial (`mode` "e2e") also names its `pipeline`: pre-processing path and frame source."""
    trial = {"model": model, "source_id": source_id, "variant": variant, "runtime": runtime, "threads": int(threads),
             "imgsz": [int(v) for v in imgsz], "format": fmt, "precision": precision}
    if options:
        trial["options"] = dict(sorted(options.items()))
    if mode != "model":
        trial["mode"] = mode
    if pipeline:
        trial["pipeline"] = dict(sorted(pipeline.items()))
    return trial


def runtime_label(trial: dict[str, Any]) -> str:
    """'onnxruntime' or 'tensorrt[precision=fp16]': a trial's runtime with its identity options."""
    options = trial.get("options") or {}
    if not options:
        return str(trial["runtime"])
    text = ",".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in options.items())
    return f"{trial['runtime']}[{text}]"


def new_record(kind: str, trial: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A record of `kind` ("latency", "accuracy"...) for `trial`, with a unique id and a timestamp."""
    return {
        "schema": SCHEMA_VERSION, "id": uuid.uuid4().hex, "kind": kind, "trial_id": trial_id(trial),
        "trial": trial, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **fields,
    }


def failure_record(kind: str, *, model: str, variant: str, runtime: str, threads: int, imgsz: Any, reason: str,
                   environment: dict[str, Any] | None, **fields: Any) -> dict[str, Any]:
    """The record of a trial that did not run: 'skipped' when the reason says so (no GPU here), else 'error' (its
    variant did not build, its worker vanished...). Its trial has no artifact (format '-')."""
    trial = make_trial(model=model, source_id="", variant=variant, runtime=runtime, threads=threads, imgsz=imgsz,
                       fmt="-")
    status = "skipped" if reason.startswith("skipped") else "error"
    return new_record(kind, trial, status=status, error=reason, environment=environment, **fields)


class ResultStore:
    """An append-only JSON-lines file of records."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def append(self, record: dict[str, Any]) -> None:
        """Append one record durably (flushed and fsync'ed before returning)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, sort_keys=True, default=str)
        with open(self.path, "a", encoding="utf-8") as fh:
            if fh.tell() > 0 and not self._ends_with_newline():
                fh.write("\n")  # a crash mid-line must not glue two records together
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"

    def read(self) -> list[dict[str, Any]]:
        """All complete records; an unreadable line (e.g. cut by a crash) is skipped with a warning."""
        if not self.path.is_file():
            return []
        records = []
        with open(self.path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    warnings.warn(f"{self.path}:{number}: skipping an incomplete record", stacklevel=2)
        return records


def merge(paths: Iterable[str | os.PathLike]) -> list[dict[str, Any]]:
    """Records of several stores (or JSON lists), each record once, in creation order."""
    seen: dict[str, dict[str, Any]] = {}
    for path in paths:
        path = Path(path)
        if path.suffix == ".json":
            records = json.loads(path.read_text())
        else:
            records = ResultStore(path).read()
        for record in records:
            seen.setdefault(record["id"], record)
    return sorted(seen.values(), key=lambda r: r.get("created", ""))


def latest_per_trial(records: list[dict[str, Any]], *, study: str | None = None) -> list[dict[str, Any]]:
    """The newest record of each trial (kind, trial id, evaluation, study key), e.g. after `--retry-failed`;
    environment probes and other records without a trial are left out."""
    latest: dict[tuple, dict[str, Any]] = {}
    for r in sorted(records, key=lambda r: r.get("created", "")):
        if "trial_id" not in r or (study is not None and r.get("study") != study):
            continue
        key = (r.get("kind"), r.get("study_key") or r["trial_id"], (r.get("evaluation") or {}).get("name"),
               r.get("round"))
        latest[key] = r
    return list(latest.values())


def write_json(path: str | os.PathLike, records: list[dict[str, Any]]) -> None:
    """Write records as one JSON list (the `--json PATH` output of every command)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(records, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)
