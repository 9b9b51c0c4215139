"""`posebench study STUDY.yaml`: the whole experiment from one file, resumable.

A study expands to trials: for every model x variant the compressed artifact is built once (a
variant is a list of recipes applied in order, `base` = none); then every runtime x threads gets
a latency trial and every runtime an accuracy trial per evaluation. Each record is appended to
`OUT/results.jsonl` the moment it exists; on re-run, trials that already have a record are
skipped, so a Ctrl-C or a crash loses at most the trial in flight. A failing trial is recorded
with its error and the study goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posebench.errors import PosebenchError
from posebench.study_file import LATENCY_MODES, Evaluation, Study, StudyError, is_gpu_kind  # noqa: F401 - a study's file is part of its interface

Progress = Callable[[str, int, int], None]


def done_keys(records: list[dict[str, Any]], *, retry_failed: bool = False) -> set[str]:
    """Trials already recorded (errored ones too, unless they are to be retried)."""
    return {r["study_key"] for r in records if "study_key" in r and not (retry_failed and r.get("status") == "error")}


def build_variant(study: Study, model: str, variant: str, out: Path, cache: Path) -> str:
    """Apply the variant's recipes in order; returns the model spec to run (checkpoint or bundle)."""
    from posebench.compress.chain import ChainInputs, apply_recipes
    from posebench.compress.recipe import Recipe

    steps = []
    for n, path in enumerate(study.variants[variant]):
        done = out / f"{n}-{path.stem}" / "done.json"  # a finished step is read back, its recipe not even parsed
        steps.append((path.stem, None if done.is_file() else Recipe.load(path)))
    inputs = ChainInputs(finetune=study.finetune, pseudo_labels=study.pseudo_labels, bn_calibration=study.bn_calibration,
                         calibration=study.calibration, epochs=study.epochs, imgsz=study.imgsz, cache=cache)
    return apply_recipes(model, steps, out, inputs)


@dataclass(frozen=True)
class LatencyJob:
    """One latency trial of a study: a (model, variant, runtime, threads, mode) in one round, on one hardware kind."""

    model: str
    variant: str
    runtime: str
    threads: int
    mode: tuple[str, str]  # (model | e2e, posebench | ultralytics)
    round_no: int
    target: str | None = None  # the hardware kind it must run on (a study's `targets`), None: wherever it runs

    @property
    def key(self) -> str:
        return _latency_key(self.model, self.variant, self.runtime, self.threads, self.round_no, self.mode) + \
            (f"|@{self.target}" if self.target else "")


@dataclass(frozen=True)
class AccuracyJob:
    """One accuracy trial of a study: a (model, variant) scored on one runtime by one evaluation."""

    model: str
    variant: str
    evaluation: Evaluation
    runtime: str

    @property
    def key(self) -> str:
        return f"{self.model}|{self.variant}|accuracy|{self.evaluation.name}|{self.runtime}"


def latency_modes(study: Study) -> list[tuple[str, str]]:
    """(mode, pipeline) pairs: model mode once; end to end once per pipeline (posebench's, Ultralytics' predict)."""
    return [(mode, pipeline) for mode in LATENCY_MODES[study.latency.get("mode", "model")]
            for pipeline in (study.latency.get("pipelines", ["posebench"]) if mode == "e2e" else ["posebench"])]


def latency_jobs(study: Study) -> list[LatencyJob]:
    """Every latency trial, round-major: round r of every configuration comes before round r+1 (interleaving)."""
    runtimes = study.runtimes + study.gpu_runtimes
    configs = [(model, variant, runtime, threads, mode) for model in study.models for variant in study.variants
               for runtime in runtimes for threads in study.threads for mode in latency_modes(study)
               if mode[1] == "posebench" or runtime in ("torch", "onnxruntime", "openvino")]
    jobs = []
    for round_no in range(1, int(study.latency.get("rounds", 2)) + 1):
        for model, variant, runtime, threads, mode in configs:
            gpu = runtime in study.gpu_runtimes
            targets = [t for t in study.targets if is_gpu_kind(t) == gpu] if study.targets else [None]
            jobs += [LatencyJob(model, variant, runtime, threads, mode, round_no, t) for t in targets]
    return jobs


def accuracy_jobs(study: Study) -> list[AccuracyJob]:
    """Every accuracy trial (the null runtime returns zeros: nothing to score)."""
    return [AccuracyJob(model, variant, ev, runtime) for model in study.models for variant in study.variants
            for ev in study.evaluations for runtime in study.runtimes + study.gpu_runtimes
            if runtime != "null" and (not ev.runtimes or runtime in ev.runtimes)]


def build_job(study: Study, model: str, variant: str, out: Path, cache: Path) -> tuple[str | None, str | None]:
    """Build one variant (cached under OUT/variants); returns (model spec, None) or (None, why it failed)."""
    try:
        return build_variant(study, model, variant, out / "variants" / Path(model).stem / variant, cache), None
    except PosebenchError as exc:
        return None, f"building variant '{variant}' failed: {exc}"
    except Exception as exc:  # recorded, the study goes on
        return None, f"building variant '{variant}' failed: {type(exc).__name__}: {exc}"


def model_name(model: str) -> str:
    """The name a study's model goes by in records (the checkpoint's, 'yolo11n-pose' for the default)."""
    from posebench.models import resolve_model

    return resolve_model(None if model == "default" else model).name


def _source(spec: str | None) -> Any:
    from posebench.models import resolve_model

    return resolve_model(None if spec in (None, "default") else spec) if spec else None


def unrun_record(study: Study, kind: str, name: str, variant: str, runtime: str, threads: int, reason: str,
                 env: dict[str, Any] | None, **fields: Any) -> dict[str, Any]:
    """The record of a trial that could not run: 'skipped' (no GPU here) or 'error' (its variant did not build)."""
    from posebench.results import failure_record

    return failure_record(kind, model=name, variant=variant, runtime=runtime, threads=threads, imgsz=study.imgsz,
                          reason=reason, environment=env, **fields)


def run_latency_job(study: Study, job: LatencyJob, spec: str | None, build_error: str | None, *, cache: Path,
                    env: dict[str, Any], name: str | None = None) -> list[dict[str, Any]]:
    """Time one latency trial (or record why it cannot run); returns its records, each marked with its round."""
    from posebench.bench import BenchPlan, run_bench
    from posebench.latency import LatencyProtocol

    name = name or model_name(job.model)
    if build_error or (job.runtime in study.gpu_runtimes and not _gpu_available()):
        return [unrun_record(study, "latency", name, job.variant, job.runtime, job.threads,
                             build_error or "skipped: no GPU on this machine", env)]
    protocol = LatencyProtocol.from_study(study.latency)
    frames = Path(study.latency["source"]) if study.latency.get("source") and job.mode[0] == "e2e" else None
    plan = BenchPlan(source=_source(spec), runtimes=(job.runtime,), threads=(job.threads,), imgsz=study.imgsz,
                     protocol=protocol, variant=job.variant, cache_dir=cache, model_name=name, mode=job.mode[0],
                     frames=frames, pipeline=job.mode[1])
    records = run_bench(plan, None)
    for record in records:
        record["round"] = job.round_no
        if job.target:
            record["target"] = job.target
    return records


def run_accuracy_job(study: Study, job: AccuracyJob, spec: str | None, build_error: str | None,
                     reference: str | None, *, cache: Path, env: dict[str, Any],
                     name: str | None = None) -> list[dict[str, Any]]:
    """Score one accuracy trial (or record why it cannot run); returns its records."""
    from posebench.evaluate.postprocess import NMSConfig
    from posebench.val import ValPlan, run_val

    name = name or model_name(job.model)
    ev = job.evaluation
    reason = build_error or ("skipped: no GPU on this machine" if job.runtime in study.gpu_runtimes
                             and not _gpu_available() else None) or \
        (f"reference variant '{ev.reference}' is not built" if ev.reference and not reference else None)
    if reason:
        records = [unrun_record(study, "accuracy", name, job.variant, job.runtime, study.threads[-1], reason, env)]
    else:
        plan = ValPlan(source=_source(spec), runtimes=(job.runtime,), imgsz=study.imgsz, threads=study.threads[-1],
                       nms=NMSConfig(), variant=job.variant, cache_dir=cache, data=ev.data, split=ev.split,
                       reference=_source(reference) if ev.reference else None,
                       reference_runtime="onnxruntime" if "onnxruntime" in study.runtimes else "torch",
                       frames=ev.source, max_frames=ev.max_frames, model_name=name)
        records = run_val(plan, None)
    for record in records:
        record.setdefault("evaluation", {})["name"] = ev.name
    return records


def targets_elsewhere(study: Study, env: dict[str, Any]) -> list[str]:
    """The study's targets this machine is not: a local run leaves their trials for a cluster run."""
    from posebench.machine.environment import machine_kinds

    here = set(machine_kinds(env))
    return sorted({t for t in study.targets if t not in here})


def run_study(study: Study, out: Path, *, on_progress: Progress | None = None,
              retry_failed: bool = False) -> list[dict[str, Any]]:
    """Run every trial not yet recorded in OUT/results.jsonl on this machine; returns the records written now.

    With `retry_failed`, trials whose record is an error run again (the old record stays; reports use the
    newest record of a trial). Trials for `targets` this machine is not are left for a cluster run
    (`posebench.cluster`), and said so."""
    from posebench.machine.environment import fingerprint, machine_kinds
    from posebench.results import ResultStore, new_record

    report = on_progress or (lambda what, done, total: None)
    out.mkdir(parents=True, exist_ok=True)
    store = ResultStore(out / "results.jsonl")
    done = done_keys(store.read(), retry_failed=retry_failed)
    cache = out / "cache"
    env = fingerprint()
    here = set(machine_kinds(env))
    lat_jobs = [j for j in latency_jobs(study) if j.target is None or j.target in here]
    acc_jobs = accuracy_jobs(study)
    total = len(lat_jobs) + len(acc_jobs)
    written: list[dict[str, Any]] = []
    k = 0

    def tick(what: str) -> None:
        report(what, k, total)

    def keep(records: list[dict[str, Any]], skey: str) -> None:
        for record in records:
            record["study_key"], record["study"] = skey, study.name
            store.append(record)
            written.append(record)

    probe_threads = max(study.threads)

    def probe(when: str) -> None:
        """The quietness probe before and after the latency rounds (once per study run and moment)."""
        from posebench.machine.probe import run_probe

        if not study.latency.get("probe", True):
            return
        tick(f"quietness probe ({when})")
        record = {**new_record("probe", {"study": study.name, "when": when}, status="ok", environment=env),
                  "when": when, "probe": run_probe(probe_threads)}
        record.pop("trial_id"), record.pop("trial")
        record["study"] = study.name
        store.append(record)
        written.append(record)

    # 1. build every variant once
    built: dict[tuple[str, str], tuple[str | None, str | None]] = {}
    names = {model: model_name(model) for model in study.models}
    for model in study.models:
        for variant in study.variants:
            tick(f"building {variant} of {Path(model).name}")
            built[(model, variant)] = build_job(study, model, variant, out, cache)

    # 2. latency, in interleaved rounds: round r measures every configuration before round r+1 starts
    pending = [job for job in lat_jobs if job.key not in done]
    if pending:
        probe("before")
    rounds = int(study.latency.get("rounds", 2))
    for job in lat_jobs:
        k += 1
        if job.key in done:
            continue
        tick(f"[{k}/{total}] {'end-to-end ' if job.mode[0] == 'e2e' else ''}latency {job.variant} on {job.runtime} @ "
             f"{job.threads}{' (Ultralytics predict)' if job.mode[1] == 'ultralytics' else ''}, "
             f"round {job.round_no}/{rounds}")
        spec, build_error = built[(job.model, job.variant)]
        keep(run_latency_job(study, job, spec, build_error, cache=cache, env=env, name=names[job.model]), job.key)
    if pending:
        probe("after")

    # 3. accuracy
    for job in acc_jobs:
        k += 1
        if job.key in done:
            continue
        tick(f"[{k}/{total}] accuracy '{job.evaluation.name}' of {job.variant} on {job.runtime}")
        spec, build_error = built[(job.model, job.variant)]
        reference = built[(job.model, job.evaluation.reference)][0] if job.evaluation.reference else None
        keep(run_accuracy_job(study, job, spec, build_error, reference, cache=cache, env=env,
                              name=names[job.model]), job.key)
    report("done", total, total)
    return written


def _latency_key(model: str, variant: str, runtime: str, threads: int, round_no: int,
                 mode: tuple[str, str] = ("model", "posebench")) -> str:
    """A latency trial's key in the study (round 1 of model mode keeps the key studies had before rounds and
    end-to-end timing existed)."""
    return f"{model}|{variant}|latency|{runtime}|{threads}" + (f"|r{round_no}" if round_no > 1 else "") + \
        (f"|{mode[0]}" if mode[0] != "model" else "") + (f"|{mode[1]}" if mode[1] != "posebench" else "")


def _gpu_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False
