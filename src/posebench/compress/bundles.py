"""The quantization stage of a recipe: the compressed checkpoint to an int8 (PTQ or QAT) or fp16 bundle."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from posebench.compress.images import calibration_frames, calibration_source
from posebench.compress.options import CompressOptions, Progress
from posebench.compress.recipe import Recipe
from posebench.ultralytics_adapter import load_yolo


def fp32_exports(checkpoint: Path, head: str, imgsz: tuple[int, int], options: CompressOptions) -> tuple[Any, Any]:
    """posebench's fp32 ONNX and OpenVINO IR of `checkpoint` (cached), exported with the source's head."""
    from posebench.export import DEFAULT_CACHE, ArtifactStore
    from posebench.models import resolve_model

    spec = str(checkpoint) if head == "auto" else f"{checkpoint}[head={head}]"
    store = ArtifactStore(resolve_model(spec), options.cache_dir or DEFAULT_CACHE)
    return store.artifact("onnx", imgsz), store.artifact("openvino", imgsz)


def quantize_bundle(checkpoint: Path, recipe: Recipe, q: Any, out_dir: Path, options: CompressOptions,
                    say: Progress, *, name: str, head: str = "auto") -> dict[str, Any]:
    """Export the checkpoint, quantize ONNX and OpenVINO IR (PTQ) or convert to fp16; describe both in OUT/bundle.json."""
    from posebench.compress.quantize import IgnoredScope, PTQConfig, calibration_batches
    from posebench.export.bundle import write_bundle
    from posebench.compress.quantized_artifacts import fp16, ptq_int8
    from posebench.machine.isa import choose_int8

    imgsz = (int(q.imgsz[0]), int(q.imgsz[1]))
    fp32_onnx, fp32_ir = fp32_exports(checkpoint, head, imgsz, options)
    if q.precision == "int8":
        source = calibration_source(q, options)
        target = choose_int8(options.target_isa or q.target_isa, q.reduce_range)
        say(f"int8 target {target.target}: {target.reason}")
        config = PTQConfig.for_target(target, calibration_method=q.calibration_method, images=q.calibration_images,
                                      per_channel=q.per_channel, bias_correction=q.bias_correction,
                                      ignored_scope=IgnoredScope(q.ignored_preset, q.ignored_add, q.ignored_remove))
        batches = calibration_batches(calibration_frames(source, q.calibration_images), imgsz, q.calibration_images)
        say(f"calibrating on {len(batches)} images from {source}: ONNX Runtime QDQ, then NNCF for OpenVINO")
        settings = {"method": "ptq", "calibration_source": str(source), "calibration_images": len(batches),
                    "calibration_method": q.calibration_method, "per_channel": q.per_channel,
                    "reduce_range": target.reduce_range, "ignored_preset": q.ignored_preset,
                    "ignored_add": list(q.ignored_add), "ignored_remove": list(q.ignored_remove),
                    "bias_correction": q.bias_correction, "int8_target": target.to_dict()}
        artifacts = ptq_int8(fp32_onnx, fp32_ir, out_dir, batches, config, settings)
    else:
        artifacts = fp16(fp32_onnx, fp32_ir, out_dir)
    return write_bundle(out_dir, artifacts, name=name, variant=recipe.name or q.precision,
                        method="ptq" if q.precision == "int8" else None, checkpoint=checkpoint,
                        recipe=recipe.to_dict())


def qat_bundle(checkpoint: Path, recipe: Recipe, q: Any, out_dir: Path, options: CompressOptions, say: Progress, *,
               name: str, data: Path, train_size: int, head: str = "auto") -> dict[str, Any]:
    """Quantization-aware training of the checkpoint (NNCF, Ultralytics' trainer, square `train_size` images), then
    QDQ ONNX + OpenVINO IR."""
    import shutil

    from posebench.compress.finetune import HeldZeros, train
    from posebench.compress.prune import apply_masks_
    from posebench.compress.qat import prepare_qat, qat_trainer
    from posebench.compress.quantize import IgnoredScope, calibration_batches
    from posebench.export.bundle import write_bundle
    from posebench.compress.quantized_artifacts import qat_int8
    from posebench.machine.isa import SATURATING, choose_int8

    imgsz = (int(q.imgsz[0]), int(q.imgsz[1]))
    source = calibration_source(q, options, fallback=data)
    batches = calibration_batches(calibration_frames(source, q.calibration_images), imgsz, q.calibration_images)
    yolo = load_yolo(checkpoint)
    teacher = None
    if recipe.distillation.enabled:  # the float model (this step's input) teaches its own fake-quantized copy
        import copy

        teacher = copy.deepcopy(yolo.model).float().eval()
    say(f"QAT: inserting fake-quantizers (NNCF), initial ranges from {len(batches)} images of {source}")
    scope = IgnoredScope(q.ignored_preset, q.ignored_add, q.ignored_remove)
    model, prepared = prepare_qat(yolo.model, batches, scope)
    held = HeldZeros(model)  # a pruned input (this recipe's pruning, or an earlier step's) stays exactly as sparse
    say(f"QAT: fine-tuning {q.epochs} epochs on {data}" + (f" (zeros of {len(held.masks)} sparse tensors held)"
                                                           if held.masks else ""))
    if teacher is not None:
        from posebench.compress.distill import distill_during_training

        distill_during_training(yolo, teacher, recipe.distillation)
        say("QAT: distilling from the float model" + (" (no task loss: labels only feed the loader)"
                                                      if recipe.distillation.task == 0 else ""))
    last = train(yolo, recipe, data=data, out_dir=out_dir / "qat", epochs=q.epochs, imgsz=train_size,
                 batch=options.batch or recipe.finetune.batch, lr0=q.lr0, callbacks=held,
                 device=options.device, trainer=qat_trainer(model), say=say)
    trained = yolo.trainer.ema.ema
    apply_masks_(trained, held.masks)
    float_checkpoint = out_dir / "model-qat.pt"  # the trained float weights (BatchNorm folded), no quantizers
    shutil.copyfile(last, float_checkpoint)
    target = choose_int8(options.target_isa or q.target_isa, False)
    if target.target in SATURATING:
        target = replace(target, reason=f"{target.target} has no VNNI; QAT keeps full 8-bit weights (NNCF), which its "
                         "u8 x s8 kernels can saturate through onnxruntime / deepsparse: deploy the OpenVINO IR "
                         "(oneDNN halves weights there) or an int8 PTQ bundle, which gets 7-bit weights")
    settings = {"method": "qat", "int8_target": target.to_dict(), "epochs": q.epochs, "lr0": q.lr0,
                "data": str(data), "imgsz_train": train_size, "sparse_tensors_held": len(held.masks),
                "calibration_source": str(source), "calibration_images": len(batches),
                "quantizers": prepared["quantizers"], "ignored_preset": q.ignored_preset,
                "distillation": recipe.distillation.enabled,
                "ignored_add": list(q.ignored_add), "ignored_remove": list(q.ignored_remove)}
    say("QAT: exporting QDQ ONNX (checked against the fake-quantized model) and OpenVINO IR")
    # metadata (sparsity, shapes, head) from the fp32 export of the trained weights; the IR comes from the QDQ ONNX
    fp32_onnx, _ = fp32_exports(float_checkpoint, head, imgsz, options)
    float_nodes = prepared["float_convs"] + ["box/keypoint decode (every op after the prediction convs)"]
    artifacts = qat_int8(trained, fp32_onnx, out_dir, batches[0], end2end=bool(fp32_onnx.meta["end2end"]),
                         float_nodes=float_nodes, tool=prepared["tool"], settings=settings)
    return write_bundle(out_dir, artifacts, name=name, variant=recipe.name or q.precision, method="qat",
                        checkpoint=float_checkpoint, recipe=recipe.to_dict())
