"""`posebench study STUDY.yaml`: the whole experiment from one file, resumable.

A study expands to trials: for every model x variant the compressed artifact is built once (a
variant is a list of recipes applied in order, `base` = none); then every runtime x threads gets
a latency trial and every runtime an accuracy trial per evaluation. Each record is appended to
`OUT/results.jsonl` the moment it exists; on re-run, trials that already have a record are
skipped, so a Ctrl-C or a crash loses at most the trial in flight. A failing trial is recorded
with its error and the study goes on.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any


from posebench.errors import InvalidInputError, PosebenchError, read_yaml_file
from posebench.evaluate.disjoint import check_disjoint

KEYS = {"name", "description", "models", "variants", "runtimes", "threads", "imgsz", "latency", "evaluation",
        "calibration", "finetune", "pseudo_labels", "bn_calibration", "epochs", "gpu_runtimes", "targets"}
LATENCY_KEYS = {"iters", "min_seconds", "warmup", "warmup_seconds", "max_seconds", "rounds", "probe", "mode",
                "source", "pipelines"}
PIPELINES = ("posebench", "ultralytics")
LATENCY_MODES = {"model": ("model",), "e2e": ("e2e",), "both": ("model", "e2e")}
EVAL_KEYS = {"data", "split", "reference", "source", "max_frames", "optional", "name", "runtimes"}


class StudyError(InvalidInputError):
    """A study file is malformed; the message names the key."""


@dataclass(frozen=True)
class Evaluation:
    """One accuracy check: against labels (`data`) or label-free against the `reference` variant's output."""

    name: str
    data: Path | None = None
    split: str = "val"
    reference: str | None = None  # a variant name of the same model, usually "base"
    source: Path | None = None
    max_frames: int = 60
    runtimes: tuple[str, ...] = ()  # the runtimes this evaluation scores on (empty: every runtime of the study)


@dataclass(frozen=True)
class Study:
    """A parsed, validated study file (paths resolved against the file's folder)."""

    name: str
    models: tuple[str, ...]
    variants: dict[str, tuple[Path, ...]]  # variant -> recipes applied in order
    runtimes: tuple[str, ...]
    threads: tuple[int, ...]
    imgsz: tuple[int, int]
    latency: dict[str, float]
    evaluations: tuple[Evaluation, ...]
    calibration: Path | None = None
    finetune: Path | None = None  # labelled data YAML for recovery fine-tuning
    pseudo_labels: Path | None = None  # images / video for label-free recovery
    bn_calibration: Path | None = None
    epochs: int | None = None  # overrides every recipe's fine-tuning epochs (schedules scale)
    gpu_runtimes: tuple[str, ...] = ()
    # hardware kinds every latency trial is timed on (`posebench.machine.environment.machine_kinds`: avx2, avx512_vnni,
    # cuda...; GPU runtimes on the cuda* kinds, CPU runtimes on the others); empty: the machine that runs it
    targets: tuple[str, ...] = ()
    skipped: tuple[str, ...] = field(default_factory=tuple)  # what was left out and why (missing optional data)

    @classmethod
    def load(cls, path: str | Path) -> Study:
        path = Path(path)
        return _parse(read_yaml_file(path, what="study file", error=StudyError), path)


def _fail(path: Path, key: str, message: str) -> StudyError:
    return StudyError(f"{path}: '{key}': {message}")


def _unknown(path: Path, data: dict, known: set[str], where: str) -> None:
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f' (did you mean "{close[0]}"?)' if close else f" (known: {', '.join(sorted(known))})"
            raise _fail(path, f"{where}{key}", f"unknown key{hint}")


def _parse(raw: Any, path: Path) -> Study:
    from posebench.export import parse_imgsz
    from posebench.runtimes import parse_runtimes

    if not isinstance(raw, dict):
        raise StudyError(f"{path}: a study is a mapping of settings")
    _unknown(path, raw, KEYS, "")
    base = path.parent

    def resolve(value: Any, key: str) -> Path:
        if not isinstance(value, str):
            raise _fail(path, key, f"must be a path, got {value!r}")
        p = Path(value).expanduser()
        return p if p.is_absolute() else (base / p).resolve()

    for key in ("models", "variants", "runtimes"):
        if key not in raw:
            raise _fail(path, key, "missing (required)")
    models = raw["models"]
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        raise _fail(path, "models", "must be a list of checkpoints, model YAMLs or exported artifacts (.onnx, "
                                    ".xml, *_openvino_model, .engine); 'default' = the embedded model")

    def model_spec(text: str) -> str:  # a file relative to the study; options ('[head=one2many]') kept
        from posebench.models import split_model_spec

        try:
            spec, _ = split_model_spec(text)
        except PosebenchError as exc:
            raise _fail(path, "models", str(exc)) from exc
        options = text.strip()[len(spec):] if text.strip().startswith(spec) else ""
        if spec == "default" or spec.endswith((".yaml", ".yml")) and not (base / spec).exists():
            return spec + options
        return str(resolve(spec, "models")) + options

    models = tuple(model_spec(m) for m in models)
    variants_raw = raw["variants"]
    if not isinstance(variants_raw, dict) or not variants_raw:
        raise _fail(path, "variants", "must map variant names to a recipe, a list of recipes, or null (base)")
    variants = {}
    for name, recipes in variants_raw.items():
        recipes = [] if recipes is None else [recipes] if isinstance(recipes, str) else recipes
        if not isinstance(recipes, list):
            raise _fail(path, f"variants.{name}", "must be a recipe path, a list of them, or null")
        resolved = tuple(resolve(r, f"variants.{name}") for r in recipes)
        for r in resolved:
            if not r.is_file():
                raise _fail(path, f"variants.{name}", f"recipe {r} does not exist")
        variants[str(name)] = resolved
    def names(value: Any) -> str:  # YAML reads an unquoted `null` runtime as None
        items = value if isinstance(value, list) else [value]
        return ",".join("null" if v is None else str(v) for v in items)

    try:
        runtimes = tuple(parse_runtimes(names(raw["runtimes"])))
        gpu = tuple(parse_runtimes(names(raw["gpu_runtimes"]))) if raw.get("gpu_runtimes") else ()
    except PosebenchError as exc:
        raise _fail(path, "runtimes", str(exc)) from exc
    threads = raw.get("threads", [1, 2])
    threads = [threads] if isinstance(threads, int) else threads
    if not isinstance(threads, list) or not threads or not all(isinstance(t, int) and t > 0 for t in threads):
        raise _fail(path, "threads", "must be a list of positive whole numbers")
    try:
        imgsz = parse_imgsz(raw.get("imgsz", 640))
    except PosebenchError as exc:
        raise _fail(path, "imgsz", str(exc)) from exc
    latency = raw.get("latency") or {}
    if not isinstance(latency, dict):
        raise _fail(path, "latency", "must be a mapping (iters, min_seconds, warmup, warmup_seconds, max_seconds)")
    _unknown(path, latency, LATENCY_KEYS, "latency.")
    rounds = latency.get("rounds", 2)
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 2:
        raise _fail(path, "latency.rounds", f"must be a whole number >= 2 (interleaved rounds expose a noisy "
                                            f"machine), got {rounds!r}")
    if latency.get("mode", "model") not in LATENCY_MODES:
        raise _fail(path, "latency.mode", f"must be one of {', '.join(LATENCY_MODES)} (model: the runtime call, as the "
                                          f"thesis; e2e: frame in, poses out), got {latency.get('mode')!r}")
    pipelines = latency.get("pipelines", ["posebench"])
    if not isinstance(pipelines, list) or not pipelines or any(p not in PIPELINES for p in pipelines):
        raise _fail(path, "latency.pipelines", f"must be a list of {', '.join(PIPELINES)} (end-to-end timing: "
                                               f"ultralytics = its own predict as the reference), got {pipelines!r}")
    if latency.get("source") is not None:
        frames = resolve(str(latency["source"]), "latency.source")
        if not frames.exists():
            raise _fail(path, "latency.source", f"{frames} not found (a video or an image folder for e2e timing)")
        latency = {**latency, "source": str(frames)}
    skipped = []
    evaluations = []
    for n, ev in enumerate(raw.get("evaluation") or []):
        if not isinstance(ev, dict):
            raise _fail(path, f"evaluation[{n}]", "must be a mapping")
        _unknown(path, ev, EVAL_KEYS, f"evaluation[{n}].")
        name = str(ev.get("name") or f"eval{n}")
        on = ev.get("runtimes") or []
        if not isinstance(on, list) or any(rt not in runtimes + gpu for rt in on):
            raise _fail(path, f"evaluation[{n}].runtimes", f"must list runtimes of this study ({', '.join(runtimes)}), "
                        f"got {on!r}")
        if "data" in ev:
            data = resolve(ev["data"], f"evaluation[{n}].data")
            if not data.is_file():
                if ev.get("optional"):
                    skipped.append(f"evaluation '{name}': {data} not found (optional)")
                    continue
                raise _fail(path, f"evaluation[{n}].data", f"{data} does not exist")
            evaluations.append(Evaluation(name=name, data=data, split=str(ev.get("split", "val")),
                                          runtimes=tuple(on)))
        elif "reference" in ev:
            if ev["reference"] not in variants:
                raise _fail(path, f"evaluation[{n}].reference", f"'{ev['reference']}' is not a variant of this study")
            source = resolve(ev.get("source", ""), f"evaluation[{n}].source") if ev.get("source") else None
            if source is None or not source.exists():
                if ev.get("optional"):
                    skipped.append(f"evaluation '{name}': {source} not found (optional)")
                    continue
                raise _fail(path, f"evaluation[{n}].source", f"{source} does not exist")
            evaluations.append(Evaluation(name=name, reference=str(ev["reference"]), source=source,
                                          max_frames=int(ev.get("max_frames", 60)), runtimes=tuple(on)))
        else:
            raise _fail(path, f"evaluation[{n}]", "needs 'data' (labels) or 'reference' + 'source' (label-free)")

    def optional_path(key: str) -> Path | None:
        if raw.get(key) is None:
            return None
        p = resolve(raw[key], key)
        if not p.exists():
            skipped.append(f"{key}: {p} not found")
            return None
        return p

    targets = raw.get("targets") or []
    targets = [targets] if isinstance(targets, str) else targets
    if not isinstance(targets, list) or not all(isinstance(t, str) and re.fullmatch(r"[A-Za-z0-9_.-]+", t)
                                                for t in targets) or len(set(targets)) != len(targets):
        raise _fail(path, "targets", "must be a list of distinct hardware kinds (avx2, avx512_vnni, cuda, or your "
                                     "own labels given to `posebench worker --kind`)")
    if targets and gpu and not any(is_gpu_kind(t) for t in targets):
        raise _fail(path, "targets", f"the study has gpu_runtimes but no GPU target (cuda...) to time them on: "
                                     f"{targets}")
    if targets and runtimes and all(is_gpu_kind(t) for t in targets):
        raise _fail(path, "targets", f"every target is a GPU kind: the CPU runtimes have nowhere to run: {targets}")
    epochs = raw.get("epochs")
    if epochs is not None and (not isinstance(epochs, int) or epochs < 0):
        raise _fail(path, "epochs", "must be a whole number >= 0")
    learning = {key: optional_path(key) for key in ("calibration", "finetune", "pseudo_labels", "bn_calibration")}
    for key, source in learning.items():  # nothing learns from, is calibrated on or chosen on what judges it
        for n, ev in enumerate(evaluations):
            if source is not None and ev.data is not None:
                try:
                    check_disjoint(source, ev.data, what=key.replace("_", " "), judge_split=ev.split)
                except InvalidInputError as exc:
                    raise _fail(path, key, str(exc)) from None
    return Study(name=str(raw.get("name") or path.stem), models=models, variants=variants, runtimes=runtimes,
                 threads=tuple(threads), imgsz=imgsz, latency=latency, evaluations=tuple(evaluations),
                 **learning, epochs=epochs, gpu_runtimes=gpu, targets=tuple(targets), skipped=tuple(skipped))


# ---- running --------------------------------------------------------------------------------------------

Progress = Callable[[str, int, int], None]


def done_keys(records: list[dict[str, Any]], *, retry_failed: bool = False) -> set[str]:
    """Trials already recorded (errored ones too, unless they are to be retried)."""
    return {r["study_key"] for r in records if "study_key" in r and not (retry_failed and r.get("status") == "error")}


def build_variant(study: Study, model: str, variant: str, out: Path, cache: Path) -> str:
    """Apply the variant's recipes in order; returns the model spec to run (checkpoint or bundle)."""
    from posebench.compress.recipe import Recipe
    from posebench.compress.run import CompressOptions, compress
    from posebench.models import resolve_model

    spec = model
    recipes = study.variants[variant]
    for n, recipe_path in enumerate(recipes):
        step_dir = out / f"{n}-{recipe_path.stem}"
        marker = step_dir / "done.json"
        if marker.is_file():
            spec = json.loads(marker.read_text())["spec"]
            continue
        recipe = Recipe.load(recipe_path)
        if recipe.quantization() or recipe.ultralytics_export():  # static artifacts: built at the study's size
            recipe = replace(recipe, modifiers=tuple(
                replace(m, imgsz=study.imgsz) if m.type in ("quantization", "ultralytics_export") else m
                for m in recipe.modifiers))
        one_shot_pruning = bool(recipe.pruning()) and not recipe.finetune.epochs
        options = CompressOptions(data=study.finetune, pseudo_labels=None if study.finetune else study.pseudo_labels,
                                  bn_source=study.bn_calibration if one_shot_pruning else None,
                                  epochs=study.epochs if recipe.finetune.epochs or recipe.qat() else None,
                                  calibration=study.calibration, cache_dir=cache)
        summary = compress(resolve_model(None if spec == "default" else spec), recipe, step_dir, options=options)
        spec = (summary["export"]["path"] if "export" in summary else str(step_dir) if "bundle" in summary
                else summary["checkpoint"])
        marker.write_text(json.dumps({"spec": spec, "summary_timings": summary["timings"]}))
    return spec


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


def is_gpu_kind(kind: str) -> bool:
    """Whether a hardware kind names a GPU ('cuda', 'cuda-h100'...): GPU runtimes are timed there, CPU ones elsewhere."""
    return kind.startswith("cuda")


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


def _placeholder(study: Study, name: str, variant: str, runtime: str, threads: int) -> dict[str, Any]:
    from posebench.results import make_trial

    return make_trial(model=name, source_id="", variant=variant, runtime=runtime, threads=threads,
                      imgsz=study.imgsz, fmt="-")


def unrun_record(study: Study, kind: str, name: str, variant: str, runtime: str, threads: int, reason: str,
                 env: dict[str, Any]) -> dict[str, Any]:
    """The record of a trial that could not run: 'skipped' (no GPU here) or 'error' (its variant did not build)."""
    from posebench.results import new_record

    status = "skipped" if reason.startswith("skipped") else "error"
    return new_record(kind, _placeholder(study, name, variant, runtime, threads), status=status, error=reason,
                      environment=env)


def _scratch(path: Path) -> Any:
    """Each trial's records pass through a scratch store, then into the study's."""
    from posebench.results import ResultStore

    store = ResultStore(path)
    store.path.unlink(missing_ok=True)
    return store


def run_latency_job(study: Study, job: LatencyJob, spec: str | None, build_error: str | None, *, cache: Path,
                    scratch: Path, env: dict[str, Any], name: str | None = None) -> list[dict[str, Any]]:
    """Time one latency trial (or record why it cannot run); returns its records, each marked with its round."""
    from posebench.bench import BenchPlan, run_bench
    from posebench.latency import LatencyProtocol

    name = name or model_name(job.model)
    if build_error or (job.runtime in study.gpu_runtimes and not _gpu_available()):
        return [unrun_record(study, "latency", name, job.variant, job.runtime, job.threads,
                             build_error or "skipped: no GPU on this machine", env)]
    protocol = LatencyProtocol(iters=int(study.latency.get("iters", 2000)),
                               min_seconds=float(study.latency.get("min_seconds", 10.0)),
                               warmup_iters=int(study.latency.get("warmup", 50)),
                               warmup_seconds=float(study.latency.get("warmup_seconds", 2.0)),
                               max_seconds=float(study.latency.get("max_seconds", 0.0)))
    frames = Path(study.latency["source"]) if study.latency.get("source") and job.mode[0] == "e2e" else None
    plan = BenchPlan(source=_source(spec), runtimes=(job.runtime,), threads=(job.threads,), imgsz=study.imgsz,
                     protocol=protocol, variant=job.variant, cache_dir=cache, model_name=name, mode=job.mode[0],
                     frames=frames, pipeline=job.mode[1])
    records = run_bench(plan, _scratch(scratch))
    for record in records:
        record["round"] = job.round_no
        if job.target:
            record["target"] = job.target
    return records


def run_accuracy_job(study: Study, job: AccuracyJob, spec: str | None, build_error: str | None,
                     reference: str | None, *, cache: Path, scratch: Path, env: dict[str, Any],
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
        records = run_val(plan, _scratch(scratch))
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
        keep(run_latency_job(study, job, spec, build_error, cache=cache, scratch=out / ".trial.jsonl", env=env,
                             name=names[job.model]), job.key)
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
        keep(run_accuracy_job(study, job, spec, build_error, reference, cache=cache, scratch=out / ".trial.jsonl",
                              env=env, name=names[job.model]), job.key)
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
