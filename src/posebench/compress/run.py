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
from posebench.compress.images import (calibration_frames, scan_images,
                                      source_frames)
from posebench.compress.options import CompressOptions, Progress
from posebench.compress.run_state import CompressResult, CompressRun, timed
from posebench.compress.prune import apply_masks_, compute_masks, overall_sparsity, resolve_targets, sparsity_table
from posebench.compress.recipe import Recipe
from posebench.errors import InvalidInputError
from posebench.models import ModelSource, materialize_checkpoint
from posebench.ultralytics_adapter import load_yolo, use_end2end


def compress(source: ModelSource, recipe: Recipe, out_dir: Path, *, options: CompressOptions = CompressOptions(),
             on_progress: Progress | None = None) -> dict[str, Any]:
    """Run `recipe` on `source`; returns a summary (checkpoint path, sparsity table, timings). Stages in order:
    the model-phase methods (`posebench.compress.methods`: channel pruning, one-shot magnitude masks), BatchNorm
    re-calibration, pseudo-labels, fine-tuning (resumed where an interrupted one left off), the final masks and the
    checkpoint, then the deploy-phase method the recipe ends in (Ultralytics' own export, or quantization)."""
    from posebench.compress.methods import stages

    say = on_progress or (lambda message: None)
    out_dir.mkdir(parents=True, exist_ok=True)
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
    run = _start(CompressRun(source, recipe, out_dir, options, say))
    resumed = interrupted_recovery(out_dir, recipe, run.epochs) if run.epochs else None
    if resumed is not None:  # steps 1-3 ran before the interruption: the pruned, partly trained model is last.pt
        say(f"resuming the interrupted recovery in {out_dir} from {resumed['last']}")
        run.yolo = load_yolo(resumed["last"])
        run.model = run.yolo.model.float()
        run.channel_info, run.calibrated, run.pseudo_counts = (resumed["channel_info"], resumed["calibrated"],
                                                               resumed["pseudo_counts"])
        run.data = Path(resumed["data"])
    else:
        for method, modifiers in stages(recipe, "model"):  # 1. what changes the model before any training
            method.run_stage(run, modifiers)
        _recalibrate(run)
        _pseudo_label(run)
    if run.epochs:
        _finetune(run, resumed)
    run.summary = summary = _save(run)
    run.result = CompressResult("checkpoint", summary["checkpoint"])
    for method, modifiers in stages(recipe, "deploy"):  # 5. the artifact the recipe ends in, from the checkpoint
        method.run_stage(run, modifiers)
    summary["result"] = run.result.to_json()
    (out_dir / "sparsity.json").write_text(json.dumps(summary, indent=2))
    return summary


def _start(run: CompressRun) -> CompressRun:
    """Load the model; check that training has data; the teacher (the dense model) when the recipe distils."""
    recipe, options, source = run.recipe, run.options, run.source
    if source.kind == "yaml":  # built as every posebench command builds it: fixed seed, the pose class count
        run.yolo = load_yolo(materialize_checkpoint(source, run.out_dir / "source.pt"))
    else:
        run.yolo = load_yolo(source.location)
    run.model = run.yolo.model.float()
    run.targets = resolve_targets(recipe, run.model)  # a target matching nothing fails here, before any work
    ft = recipe.finetune
    run.epochs = ft.epochs
    run.data = options.data or (Path(ft.data) if ft.data else None)
    run.pseudo = options.pseudo_labels or (Path(ft.pseudo_labels) if ft.pseudo_labels else None)
    if (run.epochs or recipe.qat()) and run.data is None and run.pseudo is None:
        stage = "fine-tuning" if run.epochs else "quantization-aware training"
        raise InvalidInputError(f"{stage} needs data: give --data DATA.yaml (labelled) or --pseudo-labels "
                                "IMAGES_OR_VIDEO (the dense model labels them)"
                                + (", or set finetune.epochs to 0" if run.epochs else ""))
    if run.data is not None and not run.data.is_file():
        raise InvalidInputError(f"fine-tuning data {run.data} does not exist")
    run.imgsz = options.imgsz or ft.imgsz
    if recipe.distillation.enabled and run.epochs:
        import copy

        run.teacher = (load_yolo(options.teacher).model.float().eval() if options.teacher is not None
                       else copy.deepcopy(run.model).eval())  # the dense model, before any pruning
    return run


def magnitude_pruning_stage(run: CompressRun, modifiers: list[Any]) -> None:
    """1b. One-shot magnitude modifiers at their final sparsity (gradual ones prune during training)."""
    t0 = time.perf_counter()
    one_shot_ids = {i for i, m in enumerate(run.recipe.pruning()) if m.schedule == "one-shot"}
    one_shot = [t for t in run.targets if t.modifier in one_shot_ids]
    if one_shot:
        run.say(f"one-shot pruning {len(one_shot)} tensors")
        apply_masks_(run.model, compute_masks(run.model, one_shot, run.recipe))
    run.timings["prune_s"] = time.perf_counter() - t0


def channel_pruning_stage(run: CompressRun, modifiers: list[Any]) -> None:
    """1a. Structured (channel) pruning (the recipe's one channel_pruning modifier)."""
    from posebench.compress.channels import prune_channels_

    (structured,), options, data, say = modifiers, run.options, run.data, run.say
    t0 = time.perf_counter()
    target = (f"ratio {structured.ratio:g}" if structured.ratio is not None else
              f"{structured.macs:.0%} of the MACs kept" if structured.macs is not None else
              f"{structured.latency:.0%} of the estimated conv latency kept")
    say(f"channel pruning ({structured.criterion}, {target})")
    images = fit_images = None
    image_source = run.pseudo or options.bn_recalibration or options.calibration or data
    if (structured.allocation == "sensitivity" or structured.reconstruct) and image_source is None:
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

        batches = loss_batches(data, size=structured.imgsz, batch=options.batch or run.recipe.finetune.batch,
                               limit=structured.taylor_batches)
        used = taylor_importance_(run.model, batches)
        say(f"Taylor importance from the task loss on {used} labelled images of {data}")
    labelled = None
    if structured.damage == "ap":
        if data is None or data.suffix.lower() not in (".yaml", ".yml"):
            raise InvalidInputError("damage: ap scores each scan step by pose mAP50-95 on labelled images: give the "
                                    "recovery data as --data DATA.yaml (never the set you judge on)")
        from posebench.compress.scan_damage import labelled_samples

        labelled = labelled_samples(data, structured.damage_images)
        say(f"scan steps scored by pose mAP50-95 on {len(labelled)} labelled images of {data}")
    info = prune_channels_(run.model, structured.plan(), (structured.imgsz, structured.imgsz), images, fit_images,
                           on_progress=_counting("reconstructed convs", say), labelled=labelled)
    say(f"channel pruning: {info['macs_kept']:.1%} of the conv MACs and "
        f"{info['params_after'] / info['params_before']:.1%} of the parameters kept")
    run.channel_info = info
    run.timings["channel_prune_s"] = time.perf_counter() - t0


def _recalibrate(run: CompressRun) -> None:
    """2. BatchNorm re-calibration (no labels): asked for, or before training keeps the statistics frozen."""
    recipe, info = run.recipe, run.channel_info
    bn = recipe.bn_recalibration
    bn_source = run.options.bn_recalibration or (Path(bn.source) if bn.source else None)
    # removed channels change what later layers see: refresh the statistics that training will keep fixed (not
    # after reconstruction: reconstructed convs already reproduce the dense statistics)
    if bn_source is None and info is not None and run.epochs and recipe.frozen_batchnorm() and \
            bn.before_finetune and "reconstruction" not in info:
        bn_source = run.data if run.data is not None and run.data.suffix.lower() in (".yaml", ".yml") else run.pseudo
    if bn_source is not None:
        from posebench.compress.recovery import recalibrate_bn_

        t0 = time.perf_counter()
        run.say(f"re-calibrating BatchNorm on {bn_source}")
        frames = calibration_frames(bn_source, bn.images)
        run.calibrated = recalibrate_bn_(run.model, frames, imgsz=(bn.imgsz, bn.imgsz), batch=bn.batch)
        run.timings["bn_recalibration_s"] = time.perf_counter() - t0


def _pseudo_label(run: CompressRun) -> None:
    """3a. Training without labels: the dense model labels the pseudo-label source."""
    if not ((run.epochs or run.recipe.qat()) and run.data is None):
        return
    from posebench.compress.recovery import make_pseudo_dataset
    from posebench.evaluate.validate import Predictor
    from posebench.machine.cpu import usable_cores
    from posebench.runtimes.pytorch import TorchBackend

    t0 = time.perf_counter()
    run.say(f"pseudo-labelling {run.pseudo} with the dense model")
    dense = run.out_dir / "dense.pt"
    materialize_checkpoint(run.source, dense)
    with TorchBackend(dense, threads=max(1, usable_cores())) as backend:
        # label at the dense model's own resolution, whatever size the fine-tuning uses
        predictor = Predictor(backend, (run.options.label_imgsz,) * 2, tuple(run.model.kpt_shape))
        run.data, run.pseudo_counts = make_pseudo_dataset(predictor, source_frames(run.pseudo, run.options.max_frames),
                                                          run.out_dir / "pseudo-labels")
    run.timings["pseudo_label_s"] = time.perf_counter() - t0


def _finetune(run: CompressRun, resumed: dict[str, Any] | None) -> None:
    """3b. Fine-tuning through Ultralytics' trainer (distilling when the recipe asks), resumable."""
    from posebench.compress.finetune import PruningCallbacks, train
    from posebench.ultralytics_adapter import differs_from_its_yaml, trainer_for

    recipe, say = run.recipe, run.say
    t0 = time.perf_counter()
    say(f"fine-tuning {run.epochs} epochs on {run.data}")
    if run.teacher is not None:
        from posebench.compress.distill import distill_during_training

        distill_during_training(run.yolo, run.teacher, recipe.distillation)
        say("distilling from the dense model" + (" (no task loss: labels only feed the loader)"
                                                if recipe.distillation.task == 0 else ""))
    if resumed is None:
        write_recovery_state(run.out_dir, recipe, data=run.data, channel_info=run.channel_info,
                             calibrated=run.calibrated, pseudo_counts=run.pseudo_counts)
    if resumed is not None and resumed["finished"]:
        last = Path(resumed["last"])  # training had ended; what follows it had not
    else:
        last = train(run.yolo, recipe, data=run.data, out_dir=run.out_dir, epochs=run.epochs, imgsz=run.imgsz,
                     batch=run.options.batch or recipe.finetune.batch, callbacks=PruningCallbacks(recipe),
                     device=run.options.device,
                     trainer=trainer_for(run.model) if run.channel_info or differs_from_its_yaml(run.model) else None,
                     say=say, resume=Path(resumed["last"]) if resumed else None)
    run.timings["finetune_s"] = time.perf_counter() - t0
    run.yolo = load_yolo(last)
    run.model = run.yolo.model.float()


def _save(run: CompressRun) -> dict[str, Any]:
    """4. The final masks, once more, on the weights that are saved; the checkpoint and its summary."""
    apply_masks_(run.model, compute_masks(run.model, resolve_targets(run.recipe, run.model), run.recipe))
    checkpoint = run.out_dir / "model.pt"
    run.yolo.save(str(checkpoint))
    table = sparsity_table(load_yolo(checkpoint).model, [t.name for t in run.targets])
    return {
        "checkpoint": str(checkpoint), "recipe": run.recipe.to_dict(), "source": run.source.spec,
        "targeted_sparsity": overall_sparsity(table),
        "model_sparsity": overall_sparsity(sparsity_table(load_yolo(checkpoint).model)),
        "per_layer": table, "timings": run.timings, "epochs": run.epochs,
        "data": str(run.data) if run.data else None, "bn_recalibration_images": run.calibrated,
        "pseudo_labels": run.pseudo_counts, "channel_pruning": run.channel_info,
    }


def quantization_stage(run: CompressRun, modifiers: list[Any]) -> None:
    """5. Quantization (PTQ, or QAT through the trainer) into a bundle of deployable artifacts."""
    quantization, summary = modifiers[-1], run.summary
    run.say(f"{quantization.precision} {quantization.method.upper()} at "
            f"{quantization.imgsz[0]}x{quantization.imgsz[1]}")
    head = "end2end" if use_end2end(run.model, run.source.head) else "auto" if run.source.head == "auto" \
        else "one2many"
    checkpoint, qat = Path(summary["checkpoint"]), run.recipe.qat()
    with timed(run, "quantize_s"):
        if qat is not None:
            summary["bundle"] = qat_bundle(checkpoint, run.recipe, qat, run.out_dir, run.options, run.say,
                                           name=run.source.name, data=run.data, train_size=run.imgsz, head=head)
        else:
            summary["bundle"] = quantize_bundle(checkpoint, run.recipe, quantization, run.out_dir, run.options,
                                                run.say, name=run.source.name, head=head)
    run.result = CompressResult("bundle", str(run.out_dir))


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
