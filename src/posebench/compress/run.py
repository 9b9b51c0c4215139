"""`posebench compress`: apply a recipe to a pose model and write a normal Ultralytics checkpoint.

Order: validate the recipe against the model (before any work), one-shot pruning, optional
BatchNorm re-calibration, optional fine-tuning through Ultralytics' trainer (labelled data, or
pseudo-labels made by the dense model), then the final masks are enforced once more and the
checkpoint saved with a per-layer sparsity table.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from posebench.compress.bundles import qat_bundle, quantize_bundle
from posebench.compress.images import (calibration_dataset, calibration_frames, calibration_source, scan_images,
                                      source_frames)
from posebench.compress.options import CompressOptions, Progress
from posebench.compress.prune import apply_masks_, compute_masks, overall_sparsity, resolve_targets, sparsity_table
from posebench.compress.recipe import Recipe
from posebench.errors import InvalidInputError
from posebench.models import ModelSource, materialize_checkpoint
from posebench.ultralytics_adapter import load_yolo, use_end2end


def compress(source: ModelSource, recipe: Recipe, out_dir: Path, *, options: CompressOptions = CompressOptions(),
             on_progress: Progress | None = None) -> dict[str, Any]:
    """Run `recipe` on `source`; returns a summary (checkpoint path, sparsity table, timings)."""
    say = on_progress or (lambda message: None)
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    if source.kind == "artifact":
        raise InvalidInputError(f"{source.spec} is an exported artifact; compression starts from a PyTorch "
                                "checkpoint (.pt) or a model YAML")
    if source.kind == "bundle":
        raise InvalidInputError(f"{source.spec} is already a compressed bundle; compress its checkpoint "
                                f"({source.spec}/model.pt) instead")
    channel = recipe.channel_pruning()
    if channel is not None and channel.steps > 1:
        from posebench.compress.gradual import compress_gradually

        return compress_gradually(source, recipe, out_dir, options=options, compress_step=compress,
                                  on_progress=on_progress)
    if options.epochs is not None:
        recipe = recipe.with_epochs(options.epochs)
    if source.kind == "yaml":  # built as every posebench command builds it: fixed seed, the pose class count
        yolo = load_yolo(materialize_checkpoint(source, out_dir / "source.pt"))
    else:
        yolo = load_yolo(source.location)
    model = yolo.model.float()
    targets = resolve_targets(recipe, model)  # a target matching nothing fails here, before any work
    ft = recipe.finetune
    epochs = ft.epochs
    qat = recipe.qat()
    data = options.data or (Path(ft.data) if ft.data else None)
    pseudo = options.pseudo_labels or (Path(ft.pseudo_labels) if ft.pseudo_labels else None)
    if (epochs or qat) and data is None and pseudo is None:
        stage = "fine-tuning" if epochs else "quantization-aware training"
        raise InvalidInputError(f"{stage} needs data: give --data DATA.yaml (labelled) or --pseudo-labels "
                                "IMAGES_OR_VIDEO (the dense model labels them)"
                                + (", or set finetune.epochs to 0" if epochs else ""))
    if data is not None and not data.is_file():
        raise InvalidInputError(f"fine-tuning data {data} does not exist")
    imgsz = options.imgsz or ft.imgsz

    teacher = None
    if recipe.distillation.enabled and epochs:
        import copy

        teacher = (load_yolo(options.teacher).model.float().eval() if options.teacher is not None
                   else copy.deepcopy(model).eval())  # the dense model, before any pruning
    resumed = interrupted_recovery(out_dir, recipe, epochs) if epochs else None
    if resumed is not None:  # steps 1-3 ran before the interruption: the pruned, partly trained model is last.pt
        say(f"resuming the interrupted recovery in {out_dir} from {resumed['last']}")
        yolo = load_yolo(resumed["last"])
        model = yolo.model.float()
        channel_info, calibrated, pseudo_counts = (resumed["channel_info"], resumed["calibrated"],
                                                   resumed["pseudo_counts"])
        data = Path(resumed["data"])
    else:
        # 1. structured (channel) pruning, then one-shot magnitude modifiers at their final sparsity
        channel_info = None
        structured = recipe.channel_pruning()
        if structured is not None:
            from posebench.compress.channels import prune_channels_

            t0 = time.perf_counter()
            target = (f"ratio {structured.ratio:g}" if structured.ratio is not None else
                      f"{structured.macs:.0%} of the MACs kept" if structured.macs is not None else
                      f"{structured.latency:.0%} of the estimated conv latency kept")
            say(f"channel pruning ({structured.criterion}, {target})")
            images = fit_images = None
            image_source = pseudo or options.bn_recalibration or options.calibration or data
            if structured.allocation == "sensitivity" or structured.reconstruct:
                if image_source is None:
                    what = "allocation: sensitivity measures each group's damage" if structured.allocation == "sensitivity" \
                        else "reconstruct: true fits the pruned convs to the dense model's outputs"
                    raise InvalidInputError(f"{what} on images: give --pseudo-labels, --bn-recalibration, --calib or --data")
            if structured.allocation == "sensitivity":
                images = scan_images(image_source, limit=options.max_frames)
                say(f"channel sensitivity scan on {len(images)} images from {image_source}")
            if structured.reconstruct:
                fit_images = scan_images(image_source, structured.reconstruct_images, structured.imgsz, options.max_frames)
                say(f"reconstructing the pruned convs on {len(fit_images)} images from {image_source}")
            if structured.criterion == "taylor":
                if data is None or data.suffix.lower() not in (".yaml", ".yml"):
                    raise InvalidInputError("criterion: taylor ranks channels by the task loss's gradients: give labelled "
                                            "data (--data DATA.yaml)")
                from posebench.compress.taylor import loss_batches, taylor_importance_

                batches = loss_batches(data, imgsz=structured.imgsz, batch=options.batch or recipe.finetune.batch,
                                       limit=structured.taylor_batches)
                used = taylor_importance_(model, batches)
                say(f"Taylor importance from the task loss on {used} labelled images of {data}")
            channel_info = prune_channels_(model, structured.plan(), (structured.imgsz, structured.imgsz), images,
                                           fit_images, on_progress=_counting("reconstructed convs", say))
            say(f"channel pruning: {channel_info['macs_kept']:.1%} of the conv MACs and "
                f"{channel_info['params_after'] / channel_info['params_before']:.1%} of the parameters kept")
            timings["channel_prune_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        one_shot_ids = {i for i, m in enumerate(recipe.pruning()) if m.schedule == "one-shot"}
        one_shot = [t for t in targets if t.modifier in one_shot_ids]
        if one_shot:
            say(f"one-shot pruning {len(one_shot)} tensors")
            apply_masks_(model, compute_masks(model, one_shot, recipe))
        timings["prune_s"] = time.perf_counter() - t0

        # 2. BatchNorm re-calibration (no labels)
        bn = recipe.bn_recalibration
        bn_source = options.bn_recalibration or (Path(bn.source) if bn.source else None)
        if bn_source is None and channel_info is not None and epochs and recipe.frozen_batchnorm() and \
                bn.before_finetune and "reconstruction" not in channel_info:  # reconstructed convs already reproduce the dense statistics
            # removed channels change what later layers see: refresh the statistics that training will keep fixed
            bn_source = data if data is not None and data.suffix.lower() in (".yaml", ".yml") else pseudo
        calibrated = 0
        if bn_source is not None:
            from posebench.compress.recovery import recalibrate_bn_

            t0 = time.perf_counter()
            say(f"re-calibrating BatchNorm on {bn_source}")
            frames = calibration_frames(bn_source, bn.images)
            calibrated = recalibrate_bn_(model, frames, imgsz=(bn.imgsz, bn.imgsz), batch=bn.batch)
            timings["bn_recalibration_s"] = time.perf_counter() - t0

        # 3. fine-tuning through Ultralytics' trainer
        pseudo_counts = None
        if (epochs or qat) and data is None:
            from posebench.compress.recovery import make_pseudo_dataset
            from posebench.evaluate.validate import Predictor
            from posebench.machine.cpu import usable_cores
            from posebench.runtimes.pytorch import TorchBackend

            t0 = time.perf_counter()
            say(f"pseudo-labelling {pseudo} with the dense model")
            dense = out_dir / "dense.pt"
            materialize_checkpoint(source, dense)
            with TorchBackend(dense, threads=max(1, usable_cores())) as backend:
                # label at the dense model's own resolution, whatever size the fine-tuning uses
                predictor = Predictor(backend, (options.label_imgsz,) * 2, tuple(model.kpt_shape))
                data, pseudo_counts = make_pseudo_dataset(predictor, source_frames(pseudo, options.max_frames),
                                                          out_dir / "pseudo-labels")
            timings["pseudo_label_s"] = time.perf_counter() - t0
    if epochs:
        from posebench.compress.finetune import PruningCallbacks, train

        t0 = time.perf_counter()
        say(f"fine-tuning {epochs} epochs on {data}")
        from posebench.ultralytics_adapter import differs_from_its_yaml, trainer_for

        if teacher is not None:
            from posebench.compress.distill import distill_during_training

            distill_during_training(yolo, teacher, recipe.distillation)
            say("distilling from the dense model" + (" (no task loss: labels only feed the loader)"
                                                    if recipe.distillation.task == 0 else ""))
        if resumed is None:
            write_recovery_state(out_dir, recipe, data=data, channel_info=channel_info, calibrated=calibrated,
                                 pseudo_counts=pseudo_counts)
        if resumed is not None and resumed["finished"]:
            last = Path(resumed["last"])  # training had ended; what follows it had not
        else:
            last = train(yolo, recipe, data=data, out_dir=out_dir, epochs=epochs, imgsz=imgsz,
                         batch=options.batch or ft.batch, callbacks=PruningCallbacks(recipe), device=options.device,
                         trainer=trainer_for(model) if channel_info or differs_from_its_yaml(model) else None,
                         say=say,
                         resume=Path(resumed["last"]) if resumed else None)
        timings["finetune_s"] = time.perf_counter() - t0
        yolo = load_yolo(last)
        model = yolo.model.float()

    # 4. the final masks, once more, on the weights that will be saved
    final = compute_masks(model, resolve_targets(recipe, model), recipe)
    apply_masks_(model, final)
    checkpoint = out_dir / "model.pt"
    yolo.save(str(checkpoint))
    table = sparsity_table(load_yolo(checkpoint).model, [t.name for t in targets])
    summary = {
        "checkpoint": str(checkpoint), "recipe": recipe.to_dict(), "source": source.spec,
        "targeted_sparsity": overall_sparsity(table),
        "model_sparsity": overall_sparsity(sparsity_table(load_yolo(checkpoint).model)),
        "per_layer": table, "timings": timings, "epochs": epochs, "data": str(data) if data else None,
        "bn_recalibration_images": calibrated, "pseudo_labels": pseudo_counts, "channel_pruning": channel_info,
    }
    export = recipe.ultralytics_export()
    if export is not None:
        from posebench.export.peer import ultralytics_export

        t0 = time.perf_counter()
        say(f"Ultralytics' own {export.format}{' int8' if export.int8 else ''} export at "
            f"{export.imgsz[0]}x{export.imgsz[1]}")
        data_yaml = None
        if export.int8:
            frames = calibration_frames(calibration_source(export, options), export.calibration_images)
            data_yaml = calibration_dataset((("", image) for image in frames), out_dir / "calibration",
                                            tuple(model.kpt_shape))
        artifact = ultralytics_export(checkpoint, fmt=export.format, imgsz=tuple(export.imgsz), int8=export.int8,
                                      data=data_yaml)
        summary["export"] = {"path": artifact.meta["source"], "format": export.format, "int8": export.int8,
                             "imgsz": list(export.imgsz), "tool": "ultralytics", "precision": artifact.precision,
                             "end2end": artifact.meta["end2end"]}
        timings["ultralytics_export_s"] = time.perf_counter() - t0
    quantization = recipe.quantization()
    if quantization is not None:
        t0 = time.perf_counter()
        say(f"{quantization.precision} {quantization.method.upper()} at {quantization.imgsz[0]}x{quantization.imgsz[1]}")
        head = "end2end" if use_end2end(model, source.head) else "auto" if source.head == "auto" else "one2many"
        if qat is not None:
            summary["bundle"] = qat_bundle(checkpoint, recipe, qat, out_dir, options, say, name=source.name,
                                           data=data, imgsz=imgsz, head=head)
        else:
            summary["bundle"] = quantize_bundle(checkpoint, recipe, quantization, out_dir, options, say,
                                                name=source.name, head=head)
        timings["quantize_s"] = time.perf_counter() - t0
    (out_dir / "sparsity.json").write_text(json.dumps(summary, indent=2))
    return summary


RECOVERY_STATE = "recovery.json"


def write_recovery_state(out_dir: Path, recipe: Recipe, **state: Any) -> None:
    """What a resumed recovery needs besides Ultralytics' last.pt: the recipe it ran, its data, the pruning record."""
    (out_dir / RECOVERY_STATE).write_text(json.dumps({"recipe": recipe.to_dict(), **{
        k: (str(v) if isinstance(v, Path) else v) for k, v in state.items()}}, default=str))


def interrupted_recovery(out_dir: Path, recipe: Recipe, epochs: int) -> dict[str, Any] | None:
    """The state of a recovery in `out_dir` that was interrupted (a last.pt, no model.pt yet), or None to start
    afresh. A different recipe in the same folder is refused rather than mixed."""
    import torch

    last = out_dir / "train" / "weights" / "last.pt"
    state_path = out_dir / RECOVERY_STATE
    if (out_dir / "model.pt").exists() or not last.is_file() or not state_path.is_file():
        return None
    state = json.loads(state_path.read_text())
    if state.get("recipe") != recipe.to_dict():
        raise InvalidInputError(f"{out_dir} holds an interrupted recovery of another recipe "
                                f"({state.get('recipe', {}).get('name') or 'unnamed'}): resume it with the same "
                                "recipe and options, or give a new --out")
    checkpoint = torch.load(last, map_location="cpu", weights_only=False)
    epoch = int(checkpoint.get("epoch", -1))
    state.update(last=str(last), finished=epoch < 0 or epoch + 1 >= epochs)
    return state


def _counting(what: str, say: Progress, every: int = 10) -> Any:
    """A `(done, total)` callback that says how far `what` got every `every` steps and at the end."""
    def report(done: int, total: int) -> None:
        if done % every == 0 or done == total:
            say(f"{what}: {done}/{total}")
    return report
