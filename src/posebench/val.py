"""`posebench val`: accuracy of one model through one or more deployed runtimes.

Two modes: against labels (`data`: Ultralytics data YAML or COCO keypoints JSON), or label-free
against a reference model's predictions on images or video frames (`reference` + `frames`).
Each runtime's result is a record in the results store with the same trial identity as `bench`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posebench.errors import InvalidInputError, PosebenchError
from posebench.evaluate.data import load_dataset
from posebench.evaluate.postprocess import NMSConfig
from posebench.evaluate.validate import Predictor, fidelity, iter_frames, pseudo_truth, validate
from posebench.export import DEFAULT_CACHE, ArtifactStore, read_metadata
from posebench.latency import DEFAULT_THREADS
from posebench.machine.environment import fingerprint
from posebench.models import ModelSource
from posebench.pipeline import backend_input, resolve_preprocess
from posebench.record import Failure, Record, evaluation_label
from posebench.results import ResultStore
from posebench.runtimes import backend_class, create_backend
from posebench.trial import LABEL_FREE_FRAMES, Evaluation, Trial
from posebench.what_ran import artifact_warnings, identity, runtime_options

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ValPlan:
    """What to validate, on which runtimes, against what."""

    source: ModelSource
    runtimes: tuple[str, ...]
    imgsz: tuple[int, int]
    threads: int = DEFAULT_THREADS
    nms: NMSConfig = field(default_factory=NMSConfig)
    variant: str = "base"
    runtime_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    cache_dir: Path = DEFAULT_CACHE
    data: Path | None = None  # labelled mode
    split: str = "val"
    images: Path | None = None  # image folder of a COCO JSON
    reference: ModelSource | None = None  # label-free mode
    reference_runtime: str = "torch"
    frames: Path | None = None  # images folder, image or video for label-free mode
    max_frames: int = LABEL_FREE_FRAMES  # label-free mode: frames read (0: all)
    frame_stride: int = 1
    first_frame: int = 0  # label-free mode: frames before this one are left out (e.g. they calibrated the model)
    reference_imgsz: tuple[int, int] | None = None  # the reference's input size (default: the plan's)
    ref_conf: float = 0.5
    predictions_dir: Path | None = None  # write COCO results JSON per runtime here
    model_name: str | None = None  # name recorded in the trial (default: the source's)
    preprocess: str = "reference"  # the validator's own code; "fused" / "vectorised" check a deployed pipeline's

    def __post_init__(self) -> None:
        if (self.data is None) == (self.reference is None):
            raise InvalidInputError("give either --data (score against labels) or --reference MODEL with --source "
                                    "IMAGES_OR_VIDEO (label-free fidelity), not both or neither")
        if self.reference is not None and self.frames is None:
            raise InvalidInputError("--reference needs --source: a folder of images, an image or a video")
        if not 0 < self.ref_conf < 1:
            raise InvalidInputError(f"--ref-conf must be in (0, 1), got {self.ref_conf}")


def _predictor(store: ArtifactStore, spec: str, plan: ValPlan,
               imgsz: tuple[int, int] | None = None) -> tuple[Predictor, dict[str, Any]]:
    runtime, options = runtime_options(plan.runtime_options, spec)
    cls = backend_class(runtime)
    imgsz = imgsz or plan.imgsz
    artifact = store.get(cls.artifact_format, imgsz, accept=cls.accepts, prefer=cls.prefers)
    meta = read_metadata(artifact)
    path = "reference" if plan.preprocess == "reference" else resolve_preprocess(plan.preprocess, cls)
    backend = create_backend(runtime, artifact, threads=plan.threads, options={**options, **backend_input(path)})
    return Predictor(backend, imgsz, tuple(meta["kpt_shape"]), plan.nms, end2end=meta.get("end2end"),
                     preprocess=path), meta


@dataclass
class ValContext:
    """What every accuracy trial of one `val` run shares: its plan, the model's artifacts, the machine, and what
    predictions are scored against (the labelled dataset, or frames and the reference model's poses on them)."""

    plan: ValPlan
    artifacts: ArtifactStore
    env: dict[str, Any]
    dataset: Any = None  # labels
    frames: list[Any] | None = None  # label-free
    truths: list[Any] | None = None  # label-free: the reference's poses on `frames`
    ref_imgsz: tuple[int, int] | None = None

    def evaluation(self) -> dict[str, Any]:
        """What the trials are scored against, as their records say it."""
        plan = self.plan
        if self.dataset is not None:
            return {"mode": "labels", "data": str(plan.data), "split": plan.split, "dataset": self.dataset.name}
        assert plan.reference is not None and self.frames is not None and self.ref_imgsz is not None
        return {"mode": "reference", "reference": plan.reference.spec, "reference_id": plan.reference.identity(),
                "reference_runtime": plan.reference_runtime, "source": str(plan.frames),
                "reference_imgsz": list(self.ref_imgsz), "first_frame": plan.first_frame, "ref_conf": plan.ref_conf,
                "frames": len(self.frames)}


def val_context(plan: ValPlan, report: Progress) -> ValContext:
    """Load the labels, or read the frames and label them with the reference model; a missing or corrupt model
    stops here."""
    artifacts = ArtifactStore(plan.source, plan.cache_dir)
    model_meta = artifacts.describe()
    context = ValContext(plan, artifacts, fingerprint())
    if plan.data is not None:
        context.dataset = load_dataset(plan.data, split=plan.split, images=plan.images)
        context.dataset.check_model(model_meta["kpt_shape"])
        return context
    assert plan.reference is not None and plan.frames is not None
    report("reading frames", 0, 0)
    context.frames = frames = [image for _, image in iter_frames(plan.frames, max_frames=plan.max_frames,
                                                                 stride=plan.frame_stride, start=plan.first_frame)]
    ref_store = ArtifactStore(plan.reference, plan.cache_dir)
    context.ref_imgsz = plan.reference_imgsz or ref_store.fixed_imgsz() or plan.imgsz
    ref_predictor, _ = _predictor(ref_store, plan.reference_runtime, plan, context.ref_imgsz)
    with ref_predictor.backend:
        context.truths = []
        for n, image in enumerate(frames):
            context.truths.append(pseudo_truth(ref_predictor, image, ref_conf=plan.ref_conf))
            report(f"labelling with reference {plan.reference.name} ({plan.reference_runtime})", n + 1, len(frames))
    return context


def measure_accuracy(trial: Trial, context: ValContext, report: Progress, *, named: bool = True) -> Record:
    """One accuracy trial as its record: what ran (its `Identity`), its scores, or why it did not run (its
    `Failure`). `named`: the record's evaluation carries the trial's evaluation name (a study's or tune's; `val`'s
    own trials are named after their data, which the record already says)."""
    plan = context.plan
    runtime, options = runtime_options(plan.runtime_options, trial.runtime)
    meta: dict[str, Any] | None = None
    try:
        predictor, meta = _predictor(context.artifacts, trial.runtime, plan)
        progress = lambda done, total, rt=runtime: report(f"validating on {rt}", done, total)  # noqa: E731
        with predictor.backend:
            info = predictor.backend.info()
            if context.dataset is not None:
                predictions = plan.predictions_dir / f"predictions-{runtime}.json" if plan.predictions_dir else None
                result = validate(predictor, context.dataset, predictions_json=predictions, on_image=progress)
            else:
                result = fidelity(predictor, context.frames, context.truths, on_image=progress)
        outcome = {"status": "ok", "accuracy": result, "backend": info,
                   "artifact": {"path": str(predictor.backend.artifact), "form": meta.get("form")}}
    except PosebenchError as exc:
        outcome = Failure.from_exception(exc).to_result()
    ran = identity(plan.source, variant=plan.variant, runtime=runtime, options=options, threads=plan.threads,
                   imgsz=plan.imgsz, meta=meta, model_name=plan.model_name)
    evaluation = context.evaluation()
    if named and trial.evaluation is not None:
        evaluation["name"] = trial.evaluation.name
    return Record("accuracy", trial.id, ran, failure=Failure.from_result(outcome), environment=context.env,
                  study=trial.study or None, evaluation=evaluation, accuracy=outcome.get("accuracy"),
                  backend=outcome.get("backend"), artifact=outcome.get("artifact"),
                  warnings=tuple(artifact_warnings(meta, context.env, runtime)))


def run_val(plan: ValPlan, store: ResultStore | None, on_progress: Progress | None = None, *,
            trial: Trial | None = None) -> list[Record]:
    """Validate on every runtime of the plan (`plan_trial`: one trial each); each record is appended to `store` as
    soon as it exists (None: returned only). `trial`: the one trial a study or tune asks for instead (its plan has
    its runtime); its id, evaluation name and study go into the record."""
    report = on_progress or (lambda what, done, total: None)
    context = val_context(plan, report)
    trials = [trial] if trial is not None else [plan_trial(plan, spec, context.evaluation()) for spec in plan.runtimes]
    records = []
    for asked in trials:
        record = measure_accuracy(asked, context, report, named=trial is not None)
        if store is not None:
            store.append(record)
        records.append(record)
    return records


def plan_trial(plan: ValPlan, spec: str, evaluation: dict[str, Any]) -> Trial:
    """The trial `val` runs for one runtime spec of its plan (its evaluation named after the data or the frames)."""
    return Trial("accuracy", model=plan.model_name or plan.source.name, variant=plan.variant, runtime=spec,
                 threads=plan.threads, imgsz=tuple(plan.imgsz), evaluation=Evaluation(evaluation_label(evaluation)))


def compare_to_baseline(records: list[Record], baseline: Record, name: str) -> tuple[list[Record], list[str]]:
    """Each record with its paired difference from `baseline` (scored on the same images) added: pose and box
    mAP50-95 and mAP50, COCO keypoint AP; and one printable line per record compared."""
    from posebench.evaluate.uncertainty import paired_differences
    from posebench.evaluate.compare import matches_of

    if not baseline.ok:
        return records, [f"baseline {name}: {baseline.status}: {baseline.error}"]
    lines = []
    reference = matches_of(baseline.accuracy)
    compared = []
    for r in records:
        if not r.ok or reference is None:
            compared.append(r)
            continue
        differences = paired_differences(matches_of(r.accuracy), reference)
        compared.append(r.with_fields(comparison={"baseline": name, "baseline_record": baseline.id,
                                                  "differences": {k: d.to_dict() for k, d in differences.items()}}))
        main = [f"{k} {differences[k].describe()}" for k in ("pose.map50_95", "pose.map50", "coco.AP")
                if k in differences]
        lines.append(f"{r.identity.runtime} minus baseline {name} (paired, same images): " + "; ".join(main))
    return compared, lines
