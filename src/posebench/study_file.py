"""Study files (studies/*.yaml): the YAML a study is written in, checked key by key, into a `Study`: models,
variants (recipes applied in order), runtimes, threads, sizes, the latency protocol and the evaluations."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posebench.errors import InvalidInputError, PosebenchError, read_yaml_file, unknown_key
from posebench.evaluate.disjoint import check_disjoint
from posebench.trial import LABEL_FREE_FRAMES, Evaluation

KEYS = {"name", "description", "models", "variants", "runtimes", "threads", "imgsz", "latency", "evaluation",
        "calibration", "finetune", "pseudo_labels", "bn_recalibration", "epochs", "gpu_runtimes", "targets"}
OLD_KEYS = {"bn_calibration": "bn_recalibration"}  # earlier spellings, still read
LATENCY_KEYS = {"iters", "min_seconds", "warmup", "warmup_seconds", "max_seconds", "rounds", "probe", "mode",
                "source", "pipelines"}
PIPELINES = ("posebench", "ultralytics")
LATENCY_MODES = {"model": ("model",), "e2e": ("e2e",), "both": ("model", "e2e")}
LEARNING = ("calibration", "finetune", "pseudo_labels", "bn_recalibration")  # what variants learn from
# a variant given as a mapping: its recipes, its own inputs, and the checkpoint it starts from (`model`: a shipped
# model's name or a .pt, in place of the study's model: a channel-pruned model compared as a variant of its dense one)
VARIANT_KEYS = {"recipes", "epochs", "model", *LEARNING}
EVAL_KEYS = {"data", "split", "reference", "source", "max_frames", "optional", "name", "runtimes"}


def is_gpu_kind(kind: str) -> bool:
    """Whether a hardware kind names a GPU ('cuda', 'cuda-h100'...): GPU runtimes are timed there, CPU ones elsewhere."""
    return kind.startswith("cuda")


class StudyError(InvalidInputError):
    """A study file is malformed; the message names the key."""


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
    bn_recalibration: Path | None = None  # images re-calibrating BatchNorm after one-shot pruning
    epochs: int | None = None  # overrides every recipe's fine-tuning epochs (schedules scale)
    gpu_runtimes: tuple[str, ...] = ()
    # hardware kinds every latency trial is timed on (`posebench.machine.environment.machine_kinds`: avx2, avx512_vnni,
    # cuda...; GPU runtimes on the cuda* kinds, CPU runtimes on the others); empty: the machine that runs it
    targets: tuple[str, ...] = ()
    skipped: tuple[str, ...] = field(default_factory=tuple)  # what was left out and why (missing optional data)
    # a variant's own learning inputs and epochs, over the study's (None: none for it): {variant: {key: value}}
    variant_inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # a variant that starts from another checkpoint than the study's model: {variant: model spec}
    variant_models: dict[str, str] = field(default_factory=dict)

    def start_of(self, model: str, variant: str) -> str:
        """The model `variant` of `model` starts from: the variant's own `model`, else the study's."""
        return self.variant_models.get(variant, model)

    def inputs_of(self, variant: str) -> dict[str, Any]:
        """What `variant` learns from: the study's calibration, finetune, pseudo_labels, bn_recalibration and
        epochs, with the variant's own in their place."""
        return {"calibration": self.calibration, "finetune": self.finetune, "pseudo_labels": self.pseudo_labels,
                "bn_recalibration": self.bn_recalibration, "epochs": self.epochs,
                **self.variant_inputs.get(variant, {})}

    @classmethod
    def load(cls, path: str | Path) -> Study:
        path = Path(path)
        return _parse(read_yaml_file(path, what="study file", error=StudyError), path)


def _fail(path: Path, key: str, message: str) -> StudyError:
    return StudyError(f"{path}: '{key}': {message}")


def _unknown(path: Path, data: dict, known: set[str], where: str) -> None:
    for key in data:
        if key not in known:
            raise _fail(path, f"{where}{key}", unknown_key(key, sorted(known)))


def _parse(raw: Any, path: Path) -> Study:
    if not isinstance(raw, dict):
        raise StudyError(f"{path}: a study is a mapping of settings")
    for old, new in OLD_KEYS.items():
        if old in raw:
            if new in raw:
                raise _fail(path, old, f"is the old name of '{new}': give one of them")
            raw = {**{k: v for k, v in raw.items() if k != old}, new: raw[old]}
    _unknown(path, raw, KEYS, "")
    for key in ("models", "variants", "runtimes"):
        if key not in raw:
            raise _fail(path, key, "missing (required)")
    return _StudyParser(raw, path).study()


class _StudyParser:
    """One study file's settings, checked part by part; paths relative to the file; what is optional and missing
    collected in `skipped`."""

    def __init__(self, raw: dict[str, Any], path: Path) -> None:
        self.raw, self.path, self.base = raw, path, path.parent
        self.skipped: list[str] = []

    def study(self) -> Study:
        from posebench.export import parse_imgsz

        raw, path = self.raw, self.path
        models = self.models()
        variants, own_inputs, variant_models = self.variants()
        runtimes, gpu = self.runtimes()
        threads = raw.get("threads", [1, 2])
        threads = [threads] if isinstance(threads, int) else threads
        if not isinstance(threads, list) or not threads or not all(isinstance(t, int) and t > 0 for t in threads):
            raise _fail(path, "threads", "must be a list of positive whole numbers")
        try:
            imgsz = parse_imgsz(raw.get("imgsz", 640))
        except PosebenchError as exc:
            raise _fail(path, "imgsz", str(exc)) from exc
        latency = self.latency()
        evaluations = self.evaluations(variants, runtimes + gpu, runtimes)
        targets = self.targets(runtimes, gpu)
        epochs = raw.get("epochs")
        if epochs is not None and (not isinstance(epochs, int) or epochs < 0):
            raise _fail(path, "epochs", "must be a whole number >= 0")
        learning = {key: self.optional_path(key) for key in LEARNING}
        variant_inputs = self.variant_inputs(own_inputs)
        self.check_disjoint(learning, variant_inputs, evaluations)
        return Study(name=str(raw.get("name") or path.stem), models=models, variants=variants, runtimes=runtimes,
                     threads=tuple(threads), imgsz=imgsz, latency=latency, evaluations=tuple(evaluations),
                     **learning, epochs=epochs, gpu_runtimes=gpu, targets=tuple(targets),
                     skipped=tuple(self.skipped), variant_inputs=variant_inputs, variant_models=variant_models)

    def resolve(self, value: Any, key: str) -> Path:
        if not isinstance(value, str):
            raise _fail(self.path, key, f"must be a path, got {value!r}")
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.base / p).resolve()

    def optional_path(self, key: str) -> Path | None:
        if self.raw.get(key) is None:
            return None
        p = self.resolve(self.raw[key], key)
        if not p.exists():
            self.skipped.append(f"{key}: {p} not found")
            return None
        return p

    def models(self) -> tuple[str, ...]:
        path, base = self.path, self.base
        models = self.raw["models"]
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
            return str(self.resolve(spec, "models")) + options

        return tuple(model_spec(m) for m in models)

    def variant_model(self, value: Any, key: str) -> str:
        """A variant's own starting model: a shipped model's name or a checkpoint beside the study."""
        from posebench.models import resolve_model

        if not isinstance(value, str) or not value.strip():
            raise _fail(self.path, key, f"must be a shipped model's name or a checkpoint (.pt), got {value!r}")
        spec = value.strip() if not (self.base / value.strip()).exists() else str(self.resolve(value.strip(), key))
        try:
            source = resolve_model(spec)
        except PosebenchError as exc:
            raise _fail(self.path, key, str(exc)) from exc
        if source.kind != "checkpoint":
            raise _fail(self.path, key, f"'{value}' is a {source.kind}: a variant starts from a checkpoint (a "
                                        "shipped model's name or a .pt) that its recipes then compress")
        return spec

    def variants(self) -> tuple[dict[str, tuple[Path, ...]], dict[str, dict], dict[str, str]]:
        """(variant -> its recipes, variant -> its own inputs, variant -> its own starting model)."""
        path = self.path
        variants_raw = self.raw["variants"]
        if not isinstance(variants_raw, dict) or not variants_raw:
            raise _fail(path, "variants", "must map variant names to a recipe, a list of recipes, or null (base)")
        variants, own_inputs, variant_models = {}, {}, {}
        for name, recipes in variants_raw.items():
            if isinstance(recipes, dict):  # {recipes: ..., finetune: ..., pseudo_labels: ...}: inputs of its own
                _unknown(path, recipes, VARIANT_KEYS, f"variants.{name}.")
                own_inputs[str(name)] = {k: v for k, v in recipes.items() if k not in ("recipes", "model")}
                if "model" in recipes:
                    variant_models[str(name)] = self.variant_model(recipes["model"], f"variants.{name}.model")
                recipes = recipes.get("recipes")
            recipes = [] if recipes is None else [recipes] if isinstance(recipes, str) else recipes
            if not isinstance(recipes, list):
                raise _fail(path, f"variants.{name}", "must be a recipe path, a list of them, null, or a mapping with "
                                                      f"'recipes' and its own "
                                                      f"{', '.join(sorted(VARIANT_KEYS - {'recipes'}))}")
            resolved = tuple(self.resolve(r, f"variants.{name}") for r in recipes)
            for r in resolved:
                if not r.is_file():
                    raise _fail(path, f"variants.{name}", f"recipe {r} does not exist")
            variants[str(name)] = resolved
        return variants, own_inputs, variant_models

    def runtimes(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(CPU runtimes, GPU runtimes)."""
        from posebench.runtimes import parse_runtimes

        def names(value: Any) -> str:  # YAML reads an unquoted `null` runtime as None
            items = value if isinstance(value, list) else [value]
            return ",".join("null" if v is None else str(v) for v in items)

        try:
            runtimes = tuple(parse_runtimes(names(self.raw["runtimes"])))
            gpu = tuple(parse_runtimes(names(self.raw["gpu_runtimes"]))) if self.raw.get("gpu_runtimes") else ()
        except PosebenchError as exc:
            raise _fail(self.path, "runtimes", str(exc)) from exc
        return runtimes, gpu

    def latency(self) -> dict[str, Any]:
        path = self.path
        latency = self.raw.get("latency") or {}
        if not isinstance(latency, dict):
            raise _fail(path, "latency", "must be a mapping (iters, min_seconds, warmup, warmup_seconds, max_seconds)")
        _unknown(path, latency, LATENCY_KEYS, "latency.")
        rounds = latency.get("rounds", 2)
        if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 2:
            raise _fail(path, "latency.rounds", f"must be a whole number >= 2 (interleaved rounds expose a noisy "
                                                f"machine), got {rounds!r}")
        if latency.get("mode", "model") not in LATENCY_MODES:
            raise _fail(path, "latency.mode", f"must be one of {', '.join(LATENCY_MODES)} (model: the runtime call, as "
                                              f"the thesis; e2e: frame in, poses out), got {latency.get('mode')!r}")
        pipelines = latency.get("pipelines", ["posebench"])
        if not isinstance(pipelines, list) or not pipelines or any(p not in PIPELINES for p in pipelines):
            raise _fail(path, "latency.pipelines", f"must be a list of {', '.join(PIPELINES)} (end-to-end timing: "
                                                   "ultralytics = its own predict as the reference), got "
                                                   f"{pipelines!r}")
        if latency.get("source") is not None:
            frames = self.resolve(str(latency["source"]), "latency.source")
            if not frames.exists():
                raise _fail(path, "latency.source", f"{frames} not found (a video or an image folder for e2e timing)")
            latency = {**latency, "source": str(frames)}
        return latency

    def evaluations(self, variants: dict[str, Any], every: tuple[str, ...], cpu: tuple[str, ...]) -> list[Evaluation]:
        path = self.path
        evaluations = []
        for n, ev in enumerate(self.raw.get("evaluation") or []):
            if not isinstance(ev, dict):
                raise _fail(path, f"evaluation[{n}]", "must be a mapping")
            _unknown(path, ev, EVAL_KEYS, f"evaluation[{n}].")
            name = str(ev.get("name") or f"eval{n}")
            on = ev.get("runtimes") or []
            if not isinstance(on, list) or any(rt not in every for rt in on):
                raise _fail(path, f"evaluation[{n}].runtimes", f"must list runtimes of this study ({', '.join(cpu)}), "
                            f"got {on!r}")
            if "data" in ev:
                data = self.resolve(ev["data"], f"evaluation[{n}].data")
                if not data.is_file():
                    if ev.get("optional"):
                        self.skipped.append(f"evaluation '{name}': {data} not found (optional)")
                        continue
                    raise _fail(path, f"evaluation[{n}].data", f"{data} does not exist")
                evaluations.append(Evaluation(name=name, data=data, split=str(ev.get("split", "val")),
                                              runtimes=tuple(on)))
            elif "reference" in ev:
                if ev["reference"] not in variants:
                    raise _fail(path, f"evaluation[{n}].reference",
                                f"'{ev['reference']}' is not a variant of this study")
                source = self.resolve(ev.get("source", ""), f"evaluation[{n}].source") if ev.get("source") else None
                if source is None or not source.exists():
                    if ev.get("optional"):
                        self.skipped.append(f"evaluation '{name}': {source} not found (optional)")
                        continue
                    raise _fail(path, f"evaluation[{n}].source", f"{source} does not exist")
                evaluations.append(Evaluation(name=name, reference=str(ev["reference"]), source=source,
                                              max_frames=int(ev.get("max_frames", LABEL_FREE_FRAMES)), runtimes=tuple(on)))
            else:
                raise _fail(path, f"evaluation[{n}]", "needs 'data' (labels) or 'reference' + 'source' (label-free)")
        return evaluations

    def targets(self, runtimes: tuple[str, ...], gpu: tuple[str, ...]) -> list[str]:
        path = self.path
        targets = self.raw.get("targets") or []
        targets = [targets] if isinstance(targets, str) else targets
        if not isinstance(targets, list) or not all(isinstance(t, str) and re.fullmatch(r"[A-Za-z0-9_.-]+", t)
                                                    for t in targets) or len(set(targets)) != len(targets):
            raise _fail(path, "targets", "must be a list of distinct hardware kinds (avx2, avx512_vnni, cuda, or your "
                                         "own labels given to `posebench worker --kind`)")
        if targets and gpu and not any(is_gpu_kind(t) for t in targets):
            raise _fail(path, "targets", f"the study has gpu_runtimes but no GPU target (cuda...) to time them on: "
                                         f"{targets}")
        if targets and runtimes and all(is_gpu_kind(t) for t in targets):
            raise _fail(path, "targets", f"every target is a GPU kind: the CPU runtimes have nowhere to run: "
                                         f"{targets}")
        return targets

    def variant_inputs(self, own_inputs: dict[str, dict]) -> dict[str, dict]:
        """Each variant's own learning inputs (paths resolved; null: none for it) and epochs."""
        path = self.path
        variant_inputs = {}
        for name, own in own_inputs.items():
            if own.get("epochs") is not None and (not isinstance(own["epochs"], int) or own["epochs"] < 0):
                raise _fail(path, f"variants.{name}.epochs", "must be a whole number >= 0")
            paths = {}
            for key in LEARNING:
                if key in own:  # null: none for this variant, whatever the study says
                    paths[key] = self.resolve(own[key], f"variants.{name}.{key}") if own[key] is not None else None
                    if paths[key] is not None and not paths[key].exists():
                        raise _fail(path, f"variants.{name}.{key}", f"{paths[key]} does not exist")
            variant_inputs[name] = {**paths, **({"epochs": own["epochs"]} if "epochs" in own else {})}
        return variant_inputs

    def check_disjoint(self, learning: dict[str, Path | None], variant_inputs: dict[str, dict],
                       evaluations: list[Evaluation]) -> None:
        """Nothing learns from, is calibrated on or chosen on what judges it."""
        sources = list(learning.items()) + [(f"variants.{name}.{key}", value) for name, own in variant_inputs.items()
                                            for key, value in own.items() if key in LEARNING]
        for key, source in sources:
            for ev in evaluations:
                if source is not None and ev.data is not None:
                    try:
                        check_disjoint(source, ev.data, what=key.replace("_", " "), judge_split=ev.split)
                    except InvalidInputError as exc:
                        raise _fail(self.path, key, str(exc)) from None


# ---- running --------------------------------------------------------------------------------------------

