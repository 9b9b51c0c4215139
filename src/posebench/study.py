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
from dataclasses import replace
from pathlib import Path
from typing import Any

from posebench.errors import PosebenchError
from posebench.record import Record
from posebench.runtimes.base import runtime_class, ultralytics_can_predict
from posebench.study_file import LATENCY_MODES, Study, StudyError, is_gpu_kind  # noqa: F401 - a study's file is part of its interface
from posebench.trial import Built, Evaluation, Trial  # noqa: F401 - a study's trials are part of its interface

Progress = Callable[[str, int, int], None]


def done_ids(records: list[Record], *, retry_failed: bool = False) -> set[str]:
    """Trials already recorded (errored ones too, unless they are to be retried)."""
    return {r.trial_id for r in records if r.trial_id and not (retry_failed and r.status == "error")}


def build_variant(study: Study, model: str, variant: str, out: Path, cache: Path) -> str:
    """Apply the variant's recipes in order; returns the model spec to run (checkpoint or bundle)."""
    from posebench.compress.chain import ChainInputs, apply_recipes
    from posebench.compress.recipe import Recipe

    steps = []
    for n, path in enumerate(study.variants[variant]):
        done = out / f"{n}-{path.stem}" / "done.json"  # a finished step is read back, its recipe not even parsed
        steps.append((path.stem, None if done.is_file() else Recipe.load(path)))
    inputs = ChainInputs(**study.inputs_of(variant), imgsz=study.imgsz, cache=cache)
    return apply_recipes(study.start_of(model, variant), steps, out, inputs)


def latency_modes(study: Study) -> list[tuple[str, str]]:
    """(mode, pipeline) pairs: model mode once; end to end once per pipeline (posebench's, Ultralytics' predict)."""
    return [(mode, pipeline) for mode in LATENCY_MODES[study.latency.get("mode", "model")]
            for pipeline in (study.latency.get("pipelines", ["posebench"]) if mode == "e2e" else ["posebench"])]


def latency_trials(study: Study, names: dict[str, str] | None = None) -> list[Trial]:
    """Every latency trial, round-major: round r of every configuration comes before round r+1 (interleaving).
    `names`: the name each model goes by in records (default: as the study names it)."""
    from posebench.latency import LatencyProtocol

    protocol = LatencyProtocol.from_study(study.latency)
    source = Path(study.latency["source"]) if study.latency.get("source") else None
    runtimes = study.runtimes + study.gpu_runtimes
    configs = [(model, variant, runtime, threads, mode) for model in study.models for variant in study.variants
               for runtime in runtimes for threads in study.threads for mode in latency_modes(study)
               if mode[1] == "posebench" or ultralytics_can_predict(runtime)]
    trials = []
    for round_no in range(1, int(study.latency.get("rounds", 2)) + 1):
        for model, variant, runtime, threads, (mode, pipeline) in configs:
            gpu = runtime in study.gpu_runtimes
            targets = [t for t in study.targets if is_gpu_kind(t) == gpu] if study.targets else [None]
            trials += [Trial("latency", model, variant, runtime, threads, study.imgsz, mode=mode, pipeline=pipeline,
                             round=round_no, target=target, study=study.name, model_name=(names or {}).get(model, ""),
                             protocol=protocol, frames=source if mode == "e2e" else None, gpu=gpu)
                       for target in targets]
    return trials


def accuracy_trials(study: Study, names: dict[str, str] | None = None) -> list[Trial]:
    """Every accuracy trial (the null runtime returns zeros: nothing to score)."""
    reference_runtime = "onnxruntime" if "onnxruntime" in study.runtimes else "torch"
    return [Trial("accuracy", model, variant, runtime, study.threads[-1], study.imgsz,
                  evaluation=replace(ev, reference_runtime=reference_runtime), study=study.name,
                  model_name=(names or {}).get(model, ""), gpu=runtime in study.gpu_runtimes)
            for model in study.models for variant in study.variants
            for ev in study.evaluations for runtime in study.runtimes + study.gpu_runtimes
            if runtime_class(runtime).runs_model and (not ev.runtimes or runtime in ev.runtimes)]


def build_job(study: Study, model: str, variant: str, out: Path, cache: Path) -> Built:
    """Build one variant (cached under OUT/variants): the model to run, or why it failed."""
    try:
        return Built(build_variant(study, model, variant, out / "variants" / Path(model).stem / variant, cache))
    except PosebenchError as exc:
        return Built(None, f"building variant '{variant}' failed: {exc}")
    except Exception as exc:  # recorded, the study goes on
        return Built(None, f"building variant '{variant}' failed: {type(exc).__name__}: {exc}")


def model_name(model: str) -> str:
    """The name a study's model goes by in records (the checkpoint's, 'yolo11n-pose' for the default)."""
    from posebench.models import resolve_model

    return resolve_model(None if model == "default" else model).name


def reference_of(trial: Trial) -> tuple[str, str] | None:
    """The (model, variant) an accuracy trial is scored against, if it has one."""
    ev = trial.evaluation
    return (trial.model, ev.reference) if ev is not None and ev.reference else None


def targets_elsewhere(study: Study, env: dict[str, Any]) -> list[str]:
    """The study's targets this machine is not: a local run leaves their trials for a cluster run."""
    from posebench.machine.environment import machine_kinds

    here = set(machine_kinds(env))
    return sorted({t for t in study.targets if t not in here})


def run_study(study: Study, out: Path, *, on_progress: Progress | None = None,
              retry_failed: bool = False) -> list[Record]:
    """Run every trial not yet recorded in OUT/results.jsonl on this machine; returns the records written now.

    With `retry_failed`, trials whose record is an error run again (the old record stays; reports use the
    newest record of a trial). Trials for `targets` this machine is not are left for a cluster run
    (`posebench.cluster`), and said so."""
    from posebench.machine.environment import fingerprint, machine_kinds
    from posebench.results import ResultStore
    from posebench.runner import run_trial

    report = on_progress or (lambda what, done, total: None)
    out.mkdir(parents=True, exist_ok=True)
    store = ResultStore(out / "results.jsonl")
    done = done_ids(store.read(), retry_failed=retry_failed)
    cache = out / "cache"
    env = fingerprint()
    here = set(machine_kinds(env))
    names = {model: model_name(model) for model in study.models}
    timed = [t for t in latency_trials(study, names) if t.target is None or t.target in here]
    trials = timed + accuracy_trials(study, names)
    total = len(trials)
    written: list[Record] = []

    def keep(record: Record) -> None:
        store.append(record)
        written.append(record)

    def probe(when: str) -> None:
        """The quietness probe before and after the latency rounds (once per study run and moment)."""
        from posebench.machine.probe import run_probe

        if not study.latency.get("probe", True):
            return
        report(f"quietness probe ({when})", 0, total)
        keep(Record("probe", None, None, environment=env, study=study.name,
                    extra={"when": when, "probe": run_probe(max(study.threads))}))

    # 1. build every variant once
    built: dict[tuple[str, str], Built] = {}
    for model in study.models:
        for variant in study.variants:
            report(f"building {variant} of {Path(model).name}", 0, total)
            built[(model, variant)] = build_job(study, model, variant, out, cache)

    # 2. latency, in interleaved rounds: round r measures every configuration before round r+1 starts; 3. accuracy
    pending = [t for t in timed if t.id not in done]
    if pending:
        probe("before")
    rounds = int(study.latency.get("rounds", 2))
    for k, trial in enumerate(trials, 1):
        if trial.id in done:
            continue
        if trial.kind == "latency":
            report(f"[{k}/{total}] {'end-to-end ' if trial.mode == 'e2e' else ''}latency {trial.variant} on "
                   f"{trial.runtime} @ {trial.threads}{' (Ultralytics predict)' if trial.pipeline == 'ultralytics' else ''}"
                   f", round {trial.round}/{rounds}", k, total)
        else:
            report(f"[{k}/{total}] accuracy '{trial.evaluation.name}' of {trial.variant} on {trial.runtime}", k, total)
        reference = reference_of(trial)
        keep(run_trial(trial, built[(trial.model, trial.variant)], cache=cache, environment=env,
                       reference=built[reference] if reference else None))
        if trial.kind == "latency" and trial is pending[-1]:
            probe("after")
    report("done", total, total)
    return written
