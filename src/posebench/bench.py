"""`posebench bench`: batch-1 latency of one model on several runtimes and thread counts.

Artifacts are built first, in this process; then every (runtime, threads) pair is measured in a
fresh child process (`posebench.measure`) and its record appended to the results store at once,
so an interrupted sweep keeps what it measured.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from posebench.errors import InvalidInputError, PosebenchError, RuntimeUnavailableError
from posebench.export import DEFAULT_CACHE, ArtifactStore, read_metadata
from posebench.latency import LatencyProtocol
from posebench.machine.environment import fingerprint
from posebench.models import ModelSource
from posebench.record import Failure, Identity, Record
from posebench.results import ResultStore
from posebench.runtimes import backend_class
from posebench.trial import Trial
from posebench.what_ran import artifact_warnings, identity, runtime_options


@dataclass(frozen=True)
class BenchPlan:
    """What to measure: one model, several runtimes x thread counts, one protocol."""

    source: ModelSource
    runtimes: tuple[str, ...]
    threads: tuple[int, ...]
    imgsz: tuple[int, int]  # (height, width)
    protocol: LatencyProtocol = field(default_factory=LatencyProtocol)
    variant: str = "base"
    runtime_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per runtime name
    cache_dir: Path = DEFAULT_CACHE
    model_name: str | None = None  # name recorded in the trial (default: the source's)
    mode: str = "model"  # "model": the runtime call on a fixed tensor (the thesis's); "e2e": frame in, poses out
    frames: Path | None = None  # e2e: a video or image folder (default: the images that ship with Ultralytics)
    preprocess: str = "auto"  # e2e: fused | vectorised | reference | auto (see posebench.pipeline)
    max_frames: int = 64  # e2e: decoded frames held in memory and cycled through
    pipeline: str = "posebench"  # e2e: posebench's pipeline, or "ultralytics": `YOLO(artifact).predict` as reference

    def __post_init__(self) -> None:
        if self.mode not in ("model", "e2e"):
            raise InvalidInputError(f"--mode must be 'model' or 'e2e', got '{self.mode}'")
        if self.mode == "model" and (self.frames is not None or self.preprocess != "auto"
                                     or self.pipeline != "posebench"):
            raise InvalidInputError("--source, --preprocess and --pipeline belong to end-to-end timing: add --mode e2e")
        if self.pipeline not in ("posebench", "ultralytics"):
            raise InvalidInputError(f"--pipeline must be 'posebench' or 'ultralytics', got '{self.pipeline}'")
        if not self.threads or any(not isinstance(t, int) or t < 1 for t in self.threads):
            raise InvalidInputError(f"threads must be positive whole numbers, got {list(self.threads)}")
        from posebench.machine.cpu import usable_cores

        cores = usable_cores()
        if max(self.threads) > cores:
            warnings.warn(f"{max(self.threads)} threads requested but only {cores} cores are usable here: "
                          "threads will share cores and latency will not reflect a real deployment", stacklevel=2)


def parse_threads(text: str) -> tuple[int, ...]:
    """'1,2,4' -> (1, 2, 4), with a clear error for anything else."""
    try:
        values = tuple(int(t) for t in str(text).split(",") if t.strip())
    except ValueError:
        raise InvalidInputError(f"--threads takes whole numbers separated by commas (e.g. 1,2), got '{text}'")
    if not values or any(v < 1 for v in values):
        raise InvalidInputError(f"--threads must be >= 1, got '{text}'")
    return values


def identity_of(plan: BenchPlan, runtime: str, threads: int, meta: dict[str, Any] | None,
                options: dict[str, Any] | None = None) -> Identity:
    """What one measurement runs (runtime options that change it included), not how long it takes."""
    cls = backend_class(runtime)
    pipeline = None
    if plan.mode == "e2e" and plan.pipeline == "ultralytics":
        if not cls.ultralytics_predict:
            from posebench.runtimes import REGISTRY

            able = [n for n in REGISTRY if backend_class(n).ultralytics_predict]
            raise InvalidInputError(f"Ultralytics' predict pipeline is timed on {', '.join(able)} here, not on "
                                    f"{runtime}")
        pipeline = {"pipeline": "ultralytics", "source": e2e_source(plan).name}
    elif plan.mode == "e2e":
        from posebench.pipeline import resolve_preprocess

        pipeline = {"preprocess": resolve_preprocess(plan.preprocess, cls), "source": e2e_source(plan).name}
    return identity(plan.source, variant=plan.variant, runtime=runtime, options=options, threads=threads,
                    imgsz=plan.imgsz, meta=meta, model_name=plan.model_name, mode=plan.mode, pipeline=pipeline)


def plan_trial(plan: BenchPlan, spec: str, threads: int) -> Trial:
    """The trial `bench` runs for one runtime spec and thread count of its plan."""
    return Trial("latency", model=plan.model_name or plan.source.name, variant=plan.variant, runtime=spec,
                 threads=threads, imgsz=tuple(plan.imgsz), mode=plan.mode, pipeline=plan.pipeline,
                 protocol=plan.protocol, frames=plan.frames)


def e2e_source(plan: BenchPlan) -> Path:
    """The frames an end-to-end measurement runs on."""
    from posebench.pipeline import default_source

    return Path(plan.frames) if plan.frames is not None else default_source()


def e2e_spec(plan: BenchPlan) -> dict[str, Any]:
    """What the measurement child needs for end-to-end mode (pre-processing path, frames, predict thresholds)."""
    from posebench.pipeline import PREDICT_NMS

    source = e2e_source(plan)
    if not source.exists():
        raise InvalidInputError(f"--source {source} does not exist")
    return {"source": str(source.resolve()), "preprocess": plan.preprocess, "max_frames": plan.max_frames,
            "pipeline": plan.pipeline,
            "nms": {"conf": PREDICT_NMS.conf, "iou": PREDICT_NMS.iou, "max_det": PREDICT_NMS.max_det}}


def denormal_census(artifacts: ArtifactStore, imgsz: tuple[int, int]) -> dict[str, Any] | None:
    """Subnormal floats in the model's weights and activations on the fixed input (see `posebench.machine.denormals`)."""
    from posebench.machine.denormals import census
    from posebench.measure import fixed_input

    try:
        return census(artifacts.get("onnx", imgsz), fixed_input((1, 3, *imgsz)))
    except RuntimeUnavailableError:  # no ONNX of this model (an imported OpenVINO IR or engine): nothing to count
        return None
    except Exception as exc:  # a sanity figure: never let it stop a measurement
        warnings.warn(f"could not count the model's denormal numbers: {exc}", stacklevel=2)
        return None


def artifact_ops(artifacts: ArtifactStore, imgsz: tuple[int, int]) -> dict[str, float] | None:
    """Operations per inference, counted on the model's ONNX (a bundle's own, QDQ int8 included; the OpenVINO IR
    and the checkpoint do the same work). None if it cannot be counted."""
    from posebench.machine.roofline import count_ops

    try:
        return count_ops(artifacts.get("onnx", imgsz))
    except RuntimeUnavailableError:  # no ONNX of this model: an imported OpenVINO IR is counted as it is
        try:
            from posebench.machine.roofline import count_ops_openvino

            return count_ops_openvino(artifacts.get("openvino", imgsz))
        except Exception:  # an engine, or openvino missing: no count
            return None
    except Exception as exc:  # counting is a sanity figure: never let it stop a measurement
        warnings.warn(f"could not count the model's operations: {exc}", stacklevel=2)
        return None


def measure_in_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run `posebench.measure` in a new interpreter and return its result (or the crash)."""
    with tempfile.TemporaryDirectory(prefix="posebench-") as tmp:
        spec_path, result_path = Path(tmp, "spec.json"), Path(tmp, "result.json")
        spec_path.write_text(json.dumps(spec))
        proc = subprocess.run([sys.executable, "-m", "posebench.measure", str(spec_path), str(result_path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if result_path.is_file():
            return json.loads(result_path.read_text())
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        return Failure.error(f"measurement process died with exit code {proc.returncode}: {tail}",
                             "WorkerCrashed").to_result()


def plan_trials(plan: BenchPlan) -> list[Trial]:
    """The trials `bench` runs for its plan: one per runtime spec and thread count, in that order."""
    return [plan_trial(plan, spec, threads) for spec in plan.runtimes for threads in plan.threads]


@dataclass
class PreparedRuntime:
    """One runtime's side of a latency trial, made once for all its thread counts: the artifact it runs (built
    here, in this process) and its metadata, or why there is none."""

    runtime: str
    options: dict[str, Any]
    artifact: Path | None = None
    meta: dict[str, Any] | None = None
    failure: dict[str, Any] | None = None  # a Failure's result dict: the runtime is missing, the export failed
    notes: tuple[str, ...] = ()


@dataclass
class BenchContext:
    """What every latency trial of one `bench` run shares: its plan, the model's artifacts, the machine, the
    protocol recorded, and the model's operation count and subnormal census (counted once, on first need)."""

    plan: BenchPlan
    artifacts: ArtifactStore
    env: dict[str, Any]
    protocol: dict[str, Any]
    e2e: dict[str, Any] | None
    ops: dict[str, float] | None = None
    subnormals: dict[str, Any] | None = None
    prepared: dict[str, PreparedRuntime] = field(default_factory=dict)


def bench_context(plan: BenchPlan) -> BenchContext:
    """The shared side of a plan's trials; a missing or corrupt model stops here, before any runtime is tried."""
    artifacts = ArtifactStore(plan.source, plan.cache_dir)
    artifacts.describe()
    e2e = e2e_spec(plan) if plan.mode == "e2e" else None
    protocol = {**plan.protocol.to_dict(), "mode": plan.mode,
                **({"source": e2e["source"], "max_frames": plan.max_frames, "nms": e2e["nms"]} if e2e else {})}
    return BenchContext(plan, artifacts, fingerprint(), protocol, e2e)


def prepare_runtime(context: BenchContext, spec_text: str,
                    on_build: Callable[[str], None] | None = None) -> PreparedRuntime:
    """Build (or find) the artifact one runtime spec runs (`on_build` hears of it once the runtime is known to be
    installed); count the model's operations on first need."""
    plan = context.plan
    runtime, options = runtime_options(plan.runtime_options, spec_text)
    cls = backend_class(runtime)
    prepared = PreparedRuntime(runtime, options)
    try:
        cls.check_installed()
        if on_build:
            on_build(f"building {cls.artifact_format} artifact for {runtime}")
        prepared.artifact = context.artifacts.get(cls.artifact_format, plan.imgsz, accept=cls.accepts,
                                                  prefer=cls.prefers)
        prepared.meta = read_metadata(prepared.artifact)
        if context.ops is None and cls.runs_model:
            context.ops = artifact_ops(context.artifacts, plan.imgsz)
            context.subnormals = denormal_census(context.artifacts, plan.imgsz)
    except PosebenchError as exc:
        prepared.failure = Failure.from_exception(exc).to_result()
    prepared.notes = tuple(artifact_warnings(prepared.meta, context.env, runtime))
    return prepared


def measure_latency(trial: Trial, context: BenchContext, prepared: PreparedRuntime) -> Record:
    """One latency trial, timed in a fresh process, as its record: what ran (its `Identity`), how long it took,
    the roofline, or why it did not run (its `Failure`)."""
    from posebench.machine.roofline import cpu_peak, roofline

    plan, runtime, options, meta = context.plan, prepared.runtime, prepared.options, prepared.meta
    cls = backend_class(runtime)
    try:
        ran = identity_of(plan, runtime, trial.threads, meta, options)
        trial_failure = None
    except PosebenchError as exc:  # e2e on a runtime that cannot take the asked pre-processing path
        ran = identity_of(replace(plan, preprocess="auto", pipeline="posebench"), runtime, trial.threads, meta, options)
        trial_failure = Failure.from_exception(exc).to_result()
    if prepared.failure is None and trial_failure is None:
        spec = {"runtime": runtime, "artifact": str(prepared.artifact), "threads": trial.threads,
                "imgsz": list(plan.imgsz), "protocol": plan.protocol.__dict__, "options": options, "mode": plan.mode,
                "e2e": context.e2e}
        result = measure_in_child(spec)
    else:
        result = prepared.failure or trial_failure
    compute = None
    if result.get("status") == "ok" and cls.runs_model and plan.mode == "model" and str(
            (result.get("backend") or {}).get("device", "cpu")).lower() == "cpu":
        compute = roofline(context.ops, result["latency"].get("p50_ms"), cpu_peak(context.env, trial.threads))
    artifact = prepared.artifact
    return Record(
        "latency", trial.id, ran, failure=Failure.from_result(result), environment=context.env,
        study=trial.study or None, round=trial.round, target=trial.target, protocol=context.protocol,
        artifact={"path": str(artifact) if artifact else None, "form": (meta or {}).get("form"),
                  "sparsity": (meta or {}).get("sparsity"), "size_bytes": _artifact_size(artifact),
                  "ops": context.ops if cls.runs_model else None,
                  "denormals": context.subnormals if cls.runs_model else None},
        compute=compute, warnings=prepared.notes, latency=result.get("latency"), backend=result.get("backend"),
        extra={k: v for k, v in result.items() if k not in ("status", "error", "error_type", "latency", "backend")})


def run_bench(plan: BenchPlan, store: ResultStore | None,
              on_progress: Callable[[str, int, int], None] | None = None, *,
              trial: Trial | None = None) -> list[Record]:
    """Measure every trial of `plan` (`plan_trials`: each runtime x thread count); append each record to `store` as
    it is made (None: returned only). `trial`: the one trial a study or tune asks for instead (its plan has its
    runtime and thread count); its id, round, target and study go into the record."""
    trials = [trial] if trial is not None else plan_trials(plan)
    total = len(trials)
    if on_progress:
        on_progress(f"loading {plan.source.name}", 0, total)
    context = bench_context(plan)
    records: list[Record] = []
    for done, asked in enumerate(trials):
        if asked.runtime not in context.prepared:
            building = (lambda what, n=done: on_progress(what, n, total)) if on_progress else None
            context.prepared[asked.runtime] = prepare_runtime(context, asked.runtime, building)
        if on_progress:
            on_progress(f"{asked.runtime} @ {asked.threads} thread{'s' if asked.threads > 1 else ''}", done, total)
        record = measure_latency(asked, context, context.prepared[asked.runtime])
        if store is not None:
            store.append(record)
        records.append(record)
    if on_progress:
        on_progress("done", total, total)
    return records


def _artifact_size(artifact: Path | None) -> int | None:
    if artifact is None:
        return None
    if artifact.suffix == ".xml":
        return sum(p.stat().st_size for p in artifact.parent.glob("model.*") if p.suffix in (".xml", ".bin"))
    return artifact.stat().st_size
