"""What a measurement leaves behind, typed: `Identity` (what ran), `Failure` (why it did not), `Record` (one trial's
result), each with `to_json` / `from_json`.

On disk a record is one flat JSON object (`schema` 2). Schema 1 stores (before trials had one id) still load:
their `study_key`, when present, becomes the record's `trial_id`, else the configuration's hash they carried is
kept, so reports of old stores group and de-duplicate exactly as before.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from posebench.latency import LatencyStats

SCHEMA_VERSION = 2


@dataclass(frozen=True)
class Identity:
    """What ran: the model (its name and the id of its bytes), variant, runtime with the options that change what
    runs, threads, input size, artifact format and precision; an end-to-end run also names its pipeline. Latency
    and accuracy records of one configuration share it (`config_id`), so reports can join them."""

    model: str
    source_id: str
    variant: str
    runtime: str
    threads: int
    imgsz: tuple[int, int]
    format: str
    precision: str = "fp32"
    options: Mapping[str, Any] = field(default_factory=dict)  # only non-default ones, so default runs keep their ids
    mode: str = "model"  # "model": the runtime call; "e2e": frame in, poses out
    pipeline: Mapping[str, Any] | None = None  # e2e: pre-processing path and frame source

    @property
    def config_id(self) -> str:
        """Stable hash of the configuration: same configuration, same id (the rounds of a latency trial share it)."""
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        """'onnxruntime' or 'tensorrt[precision=fp16]': the runtime with its identity options."""
        if not self.options:
            return self.runtime
        text = ",".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in self.options.items())
        return f"{self.runtime}[{text}]"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "source_id": self.source_id, "variant": self.variant,
                               "runtime": self.runtime, "threads": int(self.threads),
                               "imgsz": [int(v) for v in self.imgsz], "format": self.format,
                               "precision": self.precision}
        if self.options:
            out["options"] = dict(sorted(self.options.items()))
        if self.mode != "model":
            out["mode"] = self.mode
        if self.pipeline:
            out["pipeline"] = dict(sorted(self.pipeline.items()))
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Identity:
        return cls(model=data["model"], source_id=data.get("source_id", ""), variant=data["variant"],
                   runtime=data["runtime"], threads=int(data["threads"]), imgsz=tuple(data["imgsz"]),  # type: ignore[arg-type]
                   format=data.get("format", "-"), precision=data.get("precision", "fp32"),
                   options=dict(data.get("options") or {}), mode=data.get("mode", "model"),
                   pipeline=dict(data["pipeline"]) if data.get("pipeline") else None)


@dataclass(frozen=True)
class Failure:
    """Why a trial has no result: "skipped" (cannot run here: runtime not installed, no GPU) or "error". The one
    shape of a failure; a dict (`to_result` / `from_result`) only across the measurement process's boundary."""

    status: str
    reason: str
    type: str | None = None  # the exception's class name, when one was raised

    @classmethod
    def skipped(cls, reason: str, type: str | None = None) -> Failure:
        """The trial cannot run here (no GPU, runtime not installed): not a crash."""
        return cls("skipped", reason, type)

    @classmethod
    def error(cls, reason: str, type: str | None = None) -> Failure:
        """The trial was meant to run and did not (its model did not build, it crashed, its worker was lost)."""
        return cls("error", reason, type)

    @classmethod
    def from_exception(cls, exc: BaseException) -> Failure:
        """How a trial that raised `exc` is recorded: skipped when the runtime is not installed or cannot run the
        model here at all (no GPU, a quantized variant on torch), else an error; a posebench error keeps its own
        message, anything else (a bug) is prefixed with its class."""
        from posebench.errors import PosebenchError, RuntimeNotInstalledError, RuntimeUnavailableError

        kind = type(exc).__name__
        if isinstance(exc, (RuntimeUnavailableError, RuntimeNotInstalledError)):
            return cls.skipped(str(exc), kind)
        return cls.error(str(exc) if isinstance(exc, PosebenchError) else f"{kind}: {exc}", kind)

    def to_result(self) -> dict[str, Any]:
        """The failure as the measurement process writes it (status, error, error_type)."""
        return {"status": self.status, "error": self.reason, "error_type": self.type}

    @classmethod
    def from_result(cls, result: Mapping[str, Any]) -> Failure | None:
        """The failure a measurement process's result describes (None when its status is "ok")."""
        if result.get("status", "ok") == "ok":
            return None
        return cls(str(result["status"]), str(result.get("error", "")), result.get("error_type"))


@dataclass(frozen=True)
class Accuracy:
    """An accuracy payload as posebench reads it: per group ("box", "pose", "coco") its metrics and 95 % intervals,
    the images scored, a label-free run's fidelity, the per-image matches paired comparisons need. `raw` is what a
    store holds, written back unchanged (`to_json`), so old stores report as they did."""

    raw: Mapping[str, Any]

    def score(self, group: str, metric: str) -> float | None:
        """A group's metric ('pose', 'map50_95'; 'coco', 'AP'), None where the payload has none."""
        value = (self.raw.get(group) or {}).get(metric)
        return None if value is None else float(value)

    def interval(self, group: str, metric: str) -> tuple[float, float] | None:
        """The metric's 95 % bootstrap interval, None where the payload has none."""
        found = ((self.raw.get("intervals") or {}).get(group) or {}).get(metric)
        return (float(found[0]), float(found[1])) if found else None

    def group(self, name: str) -> Mapping[str, Any]:
        """Every metric of one group (empty where the payload has none)."""
        return self.raw.get(name) or {}

    @property
    def images(self) -> int:
        return int(self.raw.get("images", 0))

    @property
    def skipped(self) -> list[str]:
        """Inputs left out of the scoring (unreadable images...), each with why."""
        return list(self.raw.get("skipped") or [])

    @property
    def instances(self) -> int:
        return int(self.raw.get("instances", 0))

    @property
    def wall_seconds(self) -> float:
        return float(self.raw.get("wall_seconds", 0.0))

    @property
    def fidelity(self) -> float | None:
        """Label-free: keypoint AP against the reference's predictions (None for a run against labels)."""
        value = self.raw.get("fidelity")
        return None if value is None else float(value)

    @property
    def headline(self) -> float:
        """Fidelity for a label-free run, else pose mAP50-95: the one number a run is chosen by."""
        return self.fidelity if self.fidelity is not None else float(self.raw["pose"]["map50_95"])

    @property
    def has_intervals(self) -> bool:
        return bool(self.raw.get("intervals"))

    def to_json(self) -> dict[str, Any]:
        return dict(self.raw)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Accuracy:
        return cls(data)


@dataclass(frozen=True)
class ArtifactFacts:
    """What a latency record says of the artifact it timed: its form ("qdq-int8", "openvino-ir"...), the operations
    one inference runs (counted on its ONNX or IR) and the census of subnormal numbers in it."""

    raw: Mapping[str, Any]

    @property
    def form(self) -> str | None:
        return self.raw.get("form")

    @property
    def ops(self) -> float | None:
        """Operations (2 x MACs) per inference, None where they could not be counted."""
        value = (self.raw.get("ops") or {}).get("ops")
        return float(value) if value else None

    @property
    def int8_ops(self) -> float:
        return float((self.raw.get("ops") or {}).get("int8_ops") or 0.0)

    @property
    def op_counts(self) -> Mapping[str, float] | None:
        """The whole count (ops, float_ops, int8_ops), as the roofline takes it."""
        return self.raw.get("ops") or None

    @property
    def denormals(self) -> Mapping[str, Any] | None:
        """`posebench.machine.denormals.census` of the model on the fixed input (None: not counted)."""
        return self.raw.get("denormals")


@dataclass(frozen=True)
class Roofline:
    """A latency record's compute payload (`posebench.machine.roofline.roofline`): achieved GOP/s and the fraction
    of the machine's estimated peak."""

    raw: Mapping[str, Any]

    @property
    def gops(self) -> float:
        return float(self.raw["gops"])

    @property
    def fraction_of_peak(self) -> float:
        return float(self.raw["fraction_of_peak"])

    @property
    def beyond_peak(self) -> bool:
        return bool(self.raw.get("beyond_peak"))

    @property
    def peak_basis(self) -> str | None:
        """How the peak was estimated (cores, clock, ops per cycle)."""
        return self.raw.get("peak_basis")


def evaluation_label(evaluation: Mapping[str, Any] | None) -> str:
    """An evaluation's name: its own, else its dataset and split, else 'fidelity:' and its frames' name (what
    `val` calls an evaluation it is not told the name of, and what reports call records without one)."""
    ev = evaluation or {}
    if ev.get("name"):
        return str(ev["name"])
    if ev.get("mode") == "labels":
        return f"{ev.get('dataset')}:{ev.get('split')}"
    return f"fidelity:{PurePath(str(ev.get('source'))).name}"


# JSON keys a Record holds as its own fields (everything else a record carries lives in `extra`); the measured
# ones are written only when they hold something
_MEASURED = ("environment", "study", "round", "target", "evaluation", "protocol", "latency", "accuracy", "artifact",
             "backend", "compute", "warnings", "executor")
_OWN = ("schema", "id", "kind", "trial_id", "created", *_MEASURED)


@dataclass(frozen=True)
class Record:
    """One trial's result (kind "latency", "accuracy", "stream"), or a machine probe (kind "probe", no trial)."""

    kind: str
    trial_id: str | None  # the trial's one id (`posebench.trial.Trial.id`); None for probes
    identity: Identity | None  # what ran; None for probes
    failure: Failure | None = None
    environment: Mapping[str, Any] | None = None
    study: str | None = None  # the study (or tune run) it belongs to
    round: int | None = None  # latency: which interleaved round
    target: str | None = None  # latency: the hardware kind it was asked to run on
    evaluation: Mapping[str, Any] | None = None  # accuracy: what it was scored against (its `name` included)
    protocol: Mapping[str, Any] | None = None
    latency: Mapping[str, Any] | None = None
    accuracy: Mapping[str, Any] | None = None
    artifact: Mapping[str, Any] | None = None
    backend: Mapping[str, Any] | None = None
    compute: Mapping[str, Any] | None = None
    warnings: tuple[str, ...] = ()
    executor: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # anything else (stream summary, tune tags, probes...)
    rounds: tuple[float, ...] = ()  # a report's combined latency record: each round's p50 (not stored)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    schema: int = SCHEMA_VERSION

    @property
    def status(self) -> str:
        return self.failure.status if self.failure else "ok"

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def error(self) -> str | None:
        return self.failure.reason if self.failure else None

    @property
    def evaluation_name(self) -> str | None:
        return (self.evaluation or {}).get("name")

    @property
    def evaluation_mode(self) -> str | None:
        """"labels" or "reference" (label-free), as the accuracy trial recorded it."""
        return (self.evaluation or {}).get("mode")

    @property
    def evaluated_against(self) -> str:
        """'coco-pose-val (val)', or 'reference M on frames.mp4, label-free': what an accuracy trial scored against."""
        ev = self.evaluation or {}
        if ev.get("mode") == "labels":
            return f"{ev.get('dataset')} ({ev.get('split')})"
        return f"reference {ev.get('reference')} on {PurePath(str(ev.get('source'))).name}, label-free"

    @property
    def latency_stats(self) -> LatencyStats | None:
        """The latency payload, typed (None: no latency measured)."""
        from posebench.latency import LatencyStats

        return LatencyStats.from_dict(dict(self.latency)) if self.latency else None

    @property
    def scores(self) -> Accuracy | None:
        """The accuracy payload, typed (None: no accuracy measured)."""
        return Accuracy(self.accuracy) if self.accuracy else None

    @property
    def artifact_facts(self) -> ArtifactFacts:
        """The artifact payload, typed (empty where the record has none)."""
        return ArtifactFacts(self.artifact or {})

    @property
    def roofline(self) -> Roofline | None:
        """The compute payload, typed (None: not computed)."""
        return Roofline(self.compute) if self.compute else None

    @property
    def device(self) -> str | None:
        """Where the backend ran ("cpu", "gpu"), as it described itself (None: no description)."""
        return (self.backend or {}).get("device")

    @property
    def spread(self) -> float | None:
        """(max - min) / min of the rounds' p50s (None with one round)."""
        if len(self.rounds) < 2 or min(self.rounds) <= 0:
            return None
        return (max(self.rounds) - min(self.rounds)) / min(self.rounds)

    def with_fields(self, **changes: Any) -> Record:
        """A copy with some fields changed; keys that are not fields go into `extra`."""
        own = {f.name for f in fields(self)}
        extra = {k: v for k, v in changes.items() if k not in own}
        kept = {k: v for k, v in changes.items() if k in own}
        if extra:
            kept["extra"] = {**self.extra, **extra}
        return replace(self, **kept)

    def to_json(self) -> dict[str, Any]:
        """The flat JSON object a store keeps (None and empty fields left out)."""
        out: dict[str, Any] = {"schema": self.schema, "id": self.id, "kind": self.kind, "created": self.created,
                               "status": self.status, "environment": self.environment}
        if self.identity is not None:
            out["trial_id"], out["trial"] = self.trial_id, self.identity.to_json()
        if self.failure:
            out["error"] = self.failure.reason
            if self.failure.type:
                out["error_type"] = self.failure.type
        for key in _MEASURED:
            value = getattr(self, key)
            if value not in (None, (), {}):
                out[key] = list(value) if isinstance(value, tuple) else value
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Record:
        """A record from its JSON object, schema 1 or 2."""
        data = dict(data)
        schema = int(data.pop("schema", 1))
        if schema > SCHEMA_VERSION:
            from posebench.errors import InvalidInputError

            raise InvalidInputError(f"a record of schema {schema}: this posebench reads up to {SCHEMA_VERSION} "
                                    f"(upgrade posebench)")
        identity = Identity.from_json(data.pop("trial")) if isinstance(data.get("trial"), Mapping) else None
        data.pop("trial", None)
        study_key = data.pop("study_key", None)
        trial_id = data.pop("trial_id", None)
        if schema == 1 and study_key:
            trial_id = study_key  # schema 1 had two ids; the study's key is the one that named a trial
        status = data.pop("status", "ok")
        reason, error_type = data.pop("error", None), data.pop("error_type", None)
        failure = None if status == "ok" else Failure(status, str(reason or ""), error_type)
        own = {k: data.pop(k) for k in _OWN if k in data}
        own["warnings"] = tuple(own.get("warnings") or ())
        return cls(kind=own.pop("kind"), trial_id=trial_id, identity=identity, failure=failure, extra=data,
                   schema=SCHEMA_VERSION, **own)
