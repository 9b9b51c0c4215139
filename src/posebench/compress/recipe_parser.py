"""Recipe YAML to recipe parts, checking keys, types and ranges, and naming the line of anything wrong."""


from __future__ import annotations

import re
from dataclasses import fields
from typing import Any

from posebench.compress.modifiers import (BNRecalibration, ChannelPruningModifier, Distillation, FineTune,
                                          PruneGroup, PruningModifier, QuantizationModifier, RecipeError, SettingError)
from posebench.errors import InvalidInputError, unknown_key


def _default(cls: type, name: str) -> Any:
    """A field's default, where the parser needs it (the dataclass is where defaults live)."""
    return next(f.default for f in fields(cls) if f.name == name)


class RecipeParser:
    """Builds the dataclasses from parsed YAML, checking keys, types and ranges with line numbers."""

    def __init__(self, source: str, lines: dict[tuple, int]):
        self.source, self.lines = source, lines

    def fail(self, path: tuple, message: str) -> RecipeError:
        line = self.lines.get(path) or self.lines.get(path[:-1]) or 0
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".") or "recipe"
        return RecipeError(f"{self.source}, line {line}: {where}: {message}")

    def keys(self, data: Any, path: tuple, cls: type, required: tuple[str, ...] = ()) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail(path, f"expected a mapping of {cls.__name__} settings, got {type(data).__name__}")
        known = [f.name for f in fields(cls)]
        for key in data:
            if key not in known:
                raise self.fail(path + (key,), unknown_key(key, known))
        for key in required:
            if key not in data:
                raise self.fail(path, f"missing required key '{key}'")
        return data

    def number(self, data: dict, key: str, path: tuple, default: float, low: float, high: float,
               *, integer: bool = False, high_open: bool = False) -> float:
        value = data.get(key, default)
        if isinstance(value, str) and not integer and re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+", value.strip()):
            value = float(value)  # YAML 1.1 reads 2e-05 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
            raise self.fail(path + (key,), f"must be {'a whole number' if integer else 'a number'}, got {value!r}")
        if value < low or value > high or (high_open and value >= high):
            bound = f"[{low}, {high})" if high_open else f"[{low}, {high}]"
            raise self.fail(path + (key,), f"{value} is outside {bound}")
        return value

    def patterns(self, data: dict, key: str, path: tuple, required: bool = False,
                 regex: bool = False) -> tuple[str, ...]:
        value = data.get(key, [])
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            kind = "node-name regexes" if regex else "parameter-name patterns (globs or 're:<regex>')"
            raise self.fail(path + (key,), f"must be a list of {kind}")
        if required and not value:
            raise self.fail(path + (key,), "needs at least one pattern")
        for n, pattern in enumerate(value):
            if regex or pattern.startswith("re:"):
                try:
                    re.compile(pattern if regex else pattern[3:])
                except re.error as exc:
                    raise self.fail(path + (key, n), f"bad regular expression: {exc}")
        return tuple(value)

    def imgsz(self, data: dict, path: tuple, default: int) -> int:
        value = self.number(data, "imgsz", path, default, 32, 8192, integer=True)
        if value % 32:
            raise self.fail(path + ("imgsz",), f"must be a multiple of 32, got {value}")
        return int(value)

    def _flag(self, data: dict, key: str, path: tuple, default: bool = True) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(path + (key,), "must be true or false")
        return value

    def choice(self, data: dict, key: str, path: tuple, default: str, options: tuple[str, ...]) -> str:
        value = data.get(key, default)
        if value not in options:
            raise self.fail(path + (key,), f"must be one of {', '.join(options)}, got {value!r}")
        return value

    def recipe(self, data: Any, recipe_cls: type) -> Any:
        """A `recipe_cls` (`Recipe`) from the parsed document."""
        data = self.keys(data if data is not None else {}, (), recipe_cls)
        modifiers = data.get("modifiers", [])
        if not isinstance(modifiers, list):
            raise self.fail(("modifiers",), "must be a list of modifiers")
        parsed = tuple(self.modifier(m, ("modifiers", i)) for i, m in enumerate(modifiers))
        from posebench.compress.methods import METHODS

        final = [i for i, m in enumerate(parsed) if METHODS[m.type].phase == "deploy"]
        if sum(m.type == "channel_pruning" for m in parsed) > 1:
            raise self.fail(("modifiers",), "one channel_pruning step per recipe (its target is for the whole model)")
        if len(final) > 1:
            raise self.fail(("modifiers", final[1]), "a recipe ends in one artifact: one quantization or "
                                                     "ultralytics_export step, not both or several")
        finetune = self.finetune(data.get("finetune") or {}, ("finetune",))
        bn = self.keys(data.get("bn_recalibration") or {}, ("bn_recalibration",), BNRecalibration)
        if bn.get("source") is not None and not isinstance(bn["source"], str):
            raise self.fail(("bn_recalibration", "source"), "must be a path (images folder or video)")
        path = ("bn_recalibration",)
        recal = BNRecalibration(source=bn.get("source"),
                                images=int(self.number(bn, "images", path, _default(BNRecalibration, "images"), 1, 100000, integer=True)),
                                batch=int(self.number(bn, "batch", path, _default(BNRecalibration, "batch"), 1, 1024, integer=True)),
                                imgsz=int(self.imgsz(bn, path, _default(BNRecalibration, "imgsz"))),
                                before_finetune=self._flag(bn, "before_finetune", path,
                                                           BNRecalibration.before_finetune))
        gradual_end = max([m.end_epoch for m in parsed
                           if m.type == "magnitude_pruning" and m.schedule == "gradual"] + [0.0])
        if gradual_end and finetune.epochs < gradual_end:
            raise self.fail(("finetune", "epochs"), f"a gradual schedule ends at epoch {gradual_end:g} but fine-tuning "
                                                    f"runs {finetune.epochs} epochs: set finetune.epochs >= {gradual_end:g}")
        steps = max([m.steps for m in parsed if m.type == "channel_pruning"] + [1])
        if steps > 1 and finetune.epochs < steps:
            raise self.fail(("finetune", "epochs"), f"a gradual channel schedule of {steps} steps recovers after each "
                                                    f"step: set finetune.epochs >= {steps}")
        version = self.number(data, "version", (), 1, 1, 1, integer=True)
        for key in ("name", "description"):
            if not isinstance(data.get(key, ""), str):
                raise self.fail((key,), "must be text")
        distill = Distillation()
        if data.get("distillation") is not None:
            spec = self.keys(data["distillation"], ("distillation",), Distillation)
            if spec.get("enabled", True) is not True and spec.get("enabled") is not False:
                raise self.fail(("distillation", "enabled"), "must be true or false")
            path = ("distillation",)
            distill = Distillation(enabled=bool(spec.get("enabled", True)),
                                   output=float(self.number(spec, "output", path, _default(Distillation, "output"), 0, 1000)),
                                   feature=float(self.number(spec, "feature", path, _default(Distillation, "feature"), 0, 1000)),
                                   task=float(self.number(spec, "task", path, _default(Distillation, "task"), 0, 1000)))
            if distill.enabled and distill.output + distill.feature == 0:
                raise self.fail(path, "output and feature are both 0: nothing to distil (remove the block)")
        return recipe_cls(modifiers=parsed, finetune=finetune, bn_recalibration=recal, distillation=distill,
                      name=data.get("name", ""),
                      description=data.get("description", ""), version=int(version))

    def modifier(self, data: Any, path: tuple) -> Any:
        """One modifier, read as its registered method says (`posebench.compress.methods.METHODS`)."""
        from posebench.compress.methods import METHODS

        got = data.get("type") if isinstance(data, dict) else data
        if got not in METHODS:
            raise self.fail(path + ("type",), f"unknown modifier type {got!r}; known: "
                                              f"{', '.join(METHODS)}")
        method = METHODS[got]
        return getattr(self, method.parse)(data, path) if method.parse else self.settings(method.modifier, data, path)

    def settings(self, cls: type, data: Any, path: tuple) -> Any:
        """A modifier read from its dataclass alone: each key typed by its field (true/false, a whole number, a
        number, text, a list of regexes, an image size), defaults from the fields, and the dataclass's own checks
        (`SettingError` names its key's line)."""
        data = self.keys(data, path, cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "type" or f.name not in data:
                continue
            kind, value, where = str(f.type), data[f.name], path + (f.name,)
            if f.name == "imgsz" and kind.startswith("tuple"):
                values[f.name] = tuple(self.size(data, path))
            elif kind.startswith("tuple"):
                values[f.name] = self.patterns(data, f.name, path, regex=True)
            elif kind.startswith("bool"):
                values[f.name] = self._flag(data, f.name, path)
            elif kind.startswith(("int", "float")):
                inf = float("inf")
                values[f.name] = self.number(data, f.name, path, 0, -inf, inf, integer=kind.startswith("int"))
            elif value is not None and not isinstance(value, str):
                raise self.fail(where, f"must be text{' or a path' if 'None' in kind else ''}, got {value!r}")
            else:
                values[f.name] = value
        try:
            return cls(**values)
        except SettingError as error:
            raise self.fail(path + (error.key,), str(error)) from None
        except InvalidInputError as error:
            raise self.fail(path, str(error)) from None

    def magnitude_pruning(self, data: dict, path: tuple) -> PruningModifier:
        data = self.keys(data, path, PruningModifier, required=("groups",))
        schedule = self.choice(data, "schedule", path, _default(PruningModifier, "schedule"), ("one-shot", "gradual"))
        start = self.number(data, "start_epoch", path, _default(PruningModifier, "start_epoch"), 0, 1e6)
        end = self.number(data, "end_epoch", path, _default(PruningModifier, "end_epoch"), 0, 1e6)
        if schedule == "gradual" and end <= start:
            raise self.fail(path + ("end_epoch",), f"end_epoch ({end}) must be after start_epoch ({start})")
        groups = data["groups"]
        if not isinstance(groups, list) or not groups:
            raise self.fail(path + ("groups",), "needs a list of at least one group (targets + sparsity)")
        return PruningModifier(
            groups=tuple(self.group(g, path + ("groups", i)) for i, g in enumerate(groups)),
            scope=self.choice(data, "scope", path, _default(PruningModifier, "scope"), ("local", "global")),
            mask=self.choice(data, "mask", path, _default(PruningModifier, "mask"), ("unstructured", "block4")), schedule=schedule,
            start_epoch=float(start), end_epoch=float(end),
            update_frequency=float(self.number(data, "update_frequency", path, _default(PruningModifier, "update_frequency"), 1e-6, 1e6)),
            init_sparsity=float(self.number(data, "init_sparsity", path, _default(PruningModifier, "init_sparsity"), 0, 1, high_open=True)),
            exclude=self.patterns(data, "exclude", path))

    def channel_pruning(self, data: dict, path: tuple) -> ChannelPruningModifier:
        """Types and ranges here, defaults from the dataclass; how the settings fit together is the modifier's own
        check (`ChannelPruningModifier.__post_init__`), named at this modifier's line."""
        from posebench.compress.channel_plan import ALLOCATIONS, CRITERIA, DAMAGES, WEIGHTINGS

        data = self.keys(data, path, ChannelPruningModifier)
        data = {k: v for k, v in data.items() if not (k in ("ratio", "macs", "latency") and v is None)}  # to_yaml nulls
        targets = {key: self.number(data, key, path, 0.0, low, high) if key in data else None
                   for key, low, high in (("ratio", 0, 0.95), ("macs", 0.05, 1.0), ("latency", 0.05, 1.0))}

        def whole(key: str, low: int, high: int) -> int:
            return int(self.number(data, key, path, _default(ChannelPruningModifier, key), low, high, integer=True))

        try:
            return ChannelPruningModifier(
                **targets, criterion=self.choice(data, "criterion", path, _default(ChannelPruningModifier, "criterion"), CRITERIA),
                round_to=whole("round_to", 1, 256), exclude=self.patterns(data, "exclude", path, regex=True),
                imgsz=self.imgsz(data, path, _default(ChannelPruningModifier, "imgsz")),
                between=self._flag(data, "between", path, _default(ChannelPruningModifier, "between")),
                compensate=self._flag(data, "compensate", path, _default(ChannelPruningModifier, "compensate")),
                allocation=self.choice(data, "allocation", path, _default(ChannelPruningModifier, "allocation"), ALLOCATIONS),
                damage=self.choice(data, "damage", path, _default(ChannelPruningModifier, "damage"), DAMAGES),
                damage_images=whole("damage_images", 8, 100000),
                reconstruct=self._flag(data, "reconstruct", path, _default(ChannelPruningModifier, "reconstruct")),
                reconstruct_images=whole("reconstruct_images", 1, 10000),
                reconstruct_weighting=self.choice(data, "reconstruct_weighting", path,
                                                  _default(ChannelPruningModifier, "reconstruct_weighting"), WEIGHTINGS),
                taylor_batches=whole("taylor_batches", 1, 10000), steps=whole("steps", 1, 100))
        except InvalidInputError as error:
            raise self.fail(path, str(error)) from None

    def size(self, data: dict, path: tuple) -> list[int]:
        size = data.get("imgsz", [640, 640])
        size = [size, size] if isinstance(size, int) else size
        if (not isinstance(size, list) or len(size) != 2 or not all(isinstance(v, int) and v > 0 and v % 32 == 0
                                                                    for v in size)):
            raise self.fail(path + ("imgsz",), f"must be a multiple of 32 or [height, width] of them, got {size!r}")
        return size

    def quantization(self, data: dict, path: tuple) -> QuantizationModifier:
        from posebench.compress.quantize import CALIBRATION_METHODS, PRESETS
        from posebench.machine.isa import INT8_TARGETS

        data = self.keys(data, path, QuantizationModifier)
        size = self.size(data, path)
        if not isinstance(data.get("per_channel", _default(QuantizationModifier, "per_channel")), bool):
            raise self.fail(path + ("per_channel",), "must be true or false")
        reduce_range = data.get("reduce_range", "auto")
        reduce_range = "auto" if reduce_range is None else reduce_range
        if not isinstance(reduce_range, bool) and reduce_range != "auto":
            raise self.fail(path + ("reduce_range",), "must be auto (chosen for target_isa), true or false")
        if data.get("calibration_source") is not None and not isinstance(data["calibration_source"], str):
            raise self.fail(path + ("calibration_source",), "must be a path")
        precision = self.choice(data, "precision", path, _default(QuantizationModifier, "precision"), ("int8", "fp16"))
        method = self.choice(data, "method", path, _default(QuantizationModifier, "method"), ("ptq", "qat"))
        for key, default in (("epochs", _default(QuantizationModifier, "epochs")), ("lr0", _default(QuantizationModifier, "lr0"))):
            if method != "qat" and data.get(key, default) != default:
                raise self.fail(path + (key,), "only applies to method: qat (post-training quantization does not train)")
        if method == "qat" and precision != "int8":
            raise self.fail(path + ("method",), "qat trains int8 only; fp16 needs no training")
        if method == "qat" and data.get("bias_correction", "fast") != "fast":
            raise self.fail(path + ("bias_correction",), "only applies to method: ptq (qat trains the biases)")
        if method == "qat" and data.get("ignored_preset") == "none":
            raise self.fail(path + ("ignored_preset",), "qat keeps the box/keypoint decode in float always: use "
                                                        "yolo-pose-float-decode or yolo-pose-float-head")
        return QuantizationModifier(
            precision=precision, method=method, imgsz=tuple(size),
            epochs=int(self.number(data, "epochs", path, _default(QuantizationModifier, "epochs"), 1, 10000, integer=True)),
            lr0=float(self.number(data, "lr0", path, _default(QuantizationModifier, "lr0"), 1e-9, 10)),
            calibration_source=data.get("calibration_source"),
            calibration_images=int(self.number(data, "calibration_images", path, _default(QuantizationModifier, "calibration_images"), 1, 100000, integer=True)),
            calibration_method=self.choice(data, "calibration_method", path, _default(QuantizationModifier, "calibration_method"), CALIBRATION_METHODS),
            per_channel=data.get("per_channel", _default(QuantizationModifier, "per_channel")), reduce_range=None if reduce_range == "auto" else reduce_range,
            target_isa=self.choice(data, "target_isa", path, _default(QuantizationModifier, "target_isa"), ("auto", *INT8_TARGETS)),
            ignored_preset=self.choice(data, "ignored_preset", path, _default(QuantizationModifier, "ignored_preset"), tuple(PRESETS)),
            ignored_add=self.patterns(data, "ignored_add", path, regex=True),
            ignored_remove=self.patterns(data, "ignored_remove", path, regex=True),
            bias_correction=self.choice(data, "bias_correction", path, _default(QuantizationModifier, "bias_correction"), ("fast", "full")))

    def group(self, data: Any, path: tuple) -> PruneGroup:
        data = self.keys(data, path, PruneGroup, required=("targets", "sparsity"))
        return PruneGroup(targets=self.patterns(data, "targets", path, required=True),
                          sparsity=float(self.number(data, "sparsity", path, 0, 0, 1, high_open=True)),
                          exclude=self.patterns(data, "exclude", path))

    def finetune(self, data: Any, path: tuple) -> FineTune:
        data = self.keys(data, path, FineTune)
        for key in ("data", "pseudo_labels"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise self.fail(path + (key,), "must be a path")
        if not isinstance(data.get("optimizer", _default(FineTune, "optimizer")), str):
            raise self.fail(path + ("optimizer",), "must be an optimizer name (SGD, AdamW, ...)")
        return FineTune(epochs=int(self.number(data, "epochs", path, _default(FineTune, "epochs"), 0, 10000, integer=True)),
                        lr0=float(self.number(data, "lr0", path, _default(FineTune, "lr0"), 1e-9, 10)),
                        lrf=float(self.number(data, "lrf", path, _default(FineTune, "lrf"), 1e-6, 1)),
                        optimizer=data.get("optimizer", _default(FineTune, "optimizer")),
                        batch=int(self.number(data, "batch", path, _default(FineTune, "batch"), 1, 4096, integer=True)),
                        imgsz=int(self.imgsz(data, path, _default(FineTune, "imgsz"))),
                        data=data.get("data"), pseudo_labels=data.get("pseudo_labels"),
                        workers=int(self.number(data, "workers", path, _default(FineTune, "workers"), 0, 64, integer=True)),
                        mosaic=float(self.number(data, "mosaic", path, _default(FineTune, "mosaic"), 0, 1)),
                        batchnorm=self.choice(data, "batchnorm", path, _default(FineTune, "batchnorm"), ("auto", "frozen", "train")))
