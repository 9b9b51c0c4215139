"""Recovery fine-tuning through Ultralytics' own trainer, with pruning masks enforced by callbacks.

Only public seams are used: `YOLO.add_callback` and `YOLO.train(...)`. `PruningCallbacks` keeps the
masks: it (re)computes them on the recipe's schedule, zeroes masked gradients, and re-applies the
masks to the model and to the EMA copy after every batch (after the optimizer step and the EMA
update). It is a plain picklable object: Ultralytics' multi-GPU DDP launcher cloudpickles
`trainer.callbacks` into each worker (`ultralytics/utils/dist.py::generate_ddp_file`), so the same
hooks run in every DDP process; masks are built in the worker from the recipe, on its own device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from posebench.compress.prune import apply_masks_, compute_masks, resolve_targets
from posebench.compress.recipe import Recipe


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)  # DDP wraps the model


class PruningCallbacks:
    """Ultralytics trainer callbacks that run a recipe's pruning schedule during training."""

    def __init__(self, recipe: Recipe):
        self.recipe_yaml = recipe.to_yaml()  # text, so the object pickles into DDP workers cheaply
        self.masks: dict[str, torch.Tensor] = {}
        self.batches_seen = 0
        self.updates = 0
        self._last_step = None

    @property
    def recipe(self) -> Recipe:
        return Recipe.from_yaml(self.recipe_yaml, source="<recipe carried by the trainer>")

    def register(self, yolo: Any) -> None:
        """Attach to an `ultralytics.YOLO` before `.train()`."""
        yolo.add_callback("on_train_start", self.on_train_start)
        yolo.add_callback("on_train_epoch_start", self.on_train_epoch_start)
        yolo.add_callback("on_train_batch_end", self.on_train_batch_end)

    def _update(self, trainer: Any, epoch: float) -> None:
        model = _unwrap(trainer.model)
        recipe = self.recipe
        self.masks = compute_masks(model, self._targets, recipe, epoch=epoch)
        self.updates += 1
        self._enforce(trainer)

    def _enforce(self, trainer: Any) -> None:
        apply_masks_(_unwrap(trainer.model), self.masks)
        if getattr(trainer, "ema", None) is not None:
            apply_masks_(trainer.ema.ema, self.masks)

    def on_train_start(self, trainer: Any) -> None:
        model = _unwrap(trainer.model)
        self._targets = resolve_targets(self.recipe, model)
        params = dict(model.named_parameters())
        for name in (t.name for t in self._targets):  # pruned weights get no gradient
            params[name].register_hook(lambda grad, n=name: grad * self.masks[n].to(grad.dtype)
                                       if n in self.masks else grad)
        self._update(trainer, float(trainer.start_epoch))
        self._last_step = self._step(float(trainer.start_epoch))

    def on_train_epoch_start(self, trainer: Any) -> None:
        self.batches_seen = 0

    def _step(self, epoch: float) -> tuple:
        """Which scheduled update an epoch falls in, per modifier (changes when a mask update is due)."""
        steps = []
        for m in self.recipe.pruning():
            if m.schedule == "one-shot" or epoch < m.start_epoch:
                steps.append(-1)
            elif epoch >= m.end_epoch:
                steps.append(10**9)
            else:
                steps.append(int((epoch - m.start_epoch) / m.update_frequency + 1e-9))
        return tuple(steps)

    def on_train_batch_end(self, trainer: Any) -> None:
        self.batches_seen += 1
        epoch = trainer.epoch + self.batches_seen / max(len(trainer.train_loader), 1)
        step = self._step(epoch)
        if step != self._last_step:
            self._last_step = step
            self._update(trainer, epoch)
        else:
            self._enforce(trainer)


class HeldZeros:
    """Trainer callbacks that keep every weight that is exactly zero now at zero (e.g. a pruned model during QAT):
    masked gradients, and model + EMA re-masked after every batch. Picklable, like `PruningCallbacks`."""

    def __init__(self, model: torch.nn.Module, prefix: str = "model."):
        self.masks = {name: (p != 0).detach().cpu() for name, p in model.named_parameters()
                      if name.startswith(prefix) and p.ndim == 4 and bool((p == 0).any())}

    def register(self, yolo: Any) -> None:
        yolo.add_callback("on_train_start", self.on_train_start)
        yolo.add_callback("on_train_batch_end", self.on_train_batch_end)

    def on_train_start(self, trainer: Any) -> None:
        params = dict(_unwrap(trainer.model).named_parameters())
        for name, mask in self.masks.items():
            self.masks[name] = mask.to(params[name].device)
            if params[name].requires_grad:  # Ultralytics freezes some (the DFL conv)
                params[name].register_hook(lambda grad, n=name: grad * self.masks[n].to(grad.dtype))
        self.on_train_batch_end(trainer)

    def on_train_batch_end(self, trainer: Any) -> None:
        apply_masks_(_unwrap(trainer.model), self.masks)
        if getattr(trainer, "ema", None) is not None:
            apply_masks_(trainer.ema.ema, self.masks)


class FrozenBatchNorm:
    """Trainer callback: every BatchNorm stays in eval mode (running statistics used and kept) while the rest
    trains. Ultralytics' trainer puts the model in train mode at each epoch start, so it runs before every batch.
    Picklable, like `PruningCallbacks`."""

    def register(self, yolo: Any) -> None:
        yolo.add_callback("on_train_batch_start", self.on_train_batch_start)

    def on_train_batch_start(self, trainer: Any) -> None:
        for module in _unwrap(trainer.model).modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class RecoveryProgress:
    """Trainer callbacks that say how a recovery goes, as it goes: epoch and batch, the running task and
    distillation losses, seconds per batch and an ETA (every `every` seconds and at each epoch's end, with the
    epoch's time). Lines, not a live bar: they read the same on a terminal and in a log. Picklable."""

    def __init__(self, say: Any, every: float = 30.0):
        self.say, self.every = say, every
        self.batches = 0
        self.started = self.epoch_started = self.last = 0.0

    def register(self, yolo: Any) -> None:
        yolo.add_callback("on_train_start", self.on_train_start)
        yolo.add_callback("on_train_epoch_start", self.on_train_epoch_start)
        yolo.add_callback("on_train_batch_end", self.on_train_batch_end)
        yolo.add_callback("on_train_epoch_end", self.on_train_epoch_end)

    def on_train_start(self, trainer: Any) -> None:
        import time

        self.started = self.last = time.perf_counter()
        self.first_epoch = int(trainer.start_epoch)
        if self.first_epoch:
            self.say(f"resuming at epoch {self.first_epoch + 1}/{trainer.epochs}")

    def on_train_epoch_start(self, trainer: Any) -> None:
        import time

        self.batches, self.epoch_started = 0, time.perf_counter()

    def _losses(self, trainer: Any) -> str:
        losses = trainer.tloss if isinstance(getattr(trainer, "tloss", None), dict) else {}
        return " ".join(f"{k} {float(v):.3f}" for k, v in losses.items())

    def _eta(self, trainer: Any, now: float) -> str:
        per_batch = (now - self.started) / max(self._done(trainer), 1)
        left = (trainer.epochs - trainer.epoch) * len(trainer.train_loader) - self.batches
        return _duration(per_batch * max(left, 0))

    def _done(self, trainer: Any) -> int:
        return (trainer.epoch - self.first_epoch) * len(trainer.train_loader) + self.batches

    def on_train_batch_end(self, trainer: Any) -> None:
        import time

        self.batches += 1
        now = time.perf_counter()
        if now - self.last < self.every:
            return
        self.last = now
        per_batch = (now - self.epoch_started) / self.batches
        self.say(f"epoch {trainer.epoch + 1}/{trainer.epochs} batch {self.batches}/{len(trainer.train_loader)}: "
                 f"{self._losses(trainer)}; {per_batch:.1f} s/batch, ETA {self._eta(trainer, now)}")

    def on_train_epoch_end(self, trainer: Any) -> None:
        import time

        now = time.perf_counter()
        self.last = now
        self.say(f"epoch {trainer.epoch + 1}/{trainer.epochs} done in {_duration(now - self.epoch_started)}: "
                 f"{self._losses(trainer)}; ETA {self._eta(trainer, now)}")


STAGE_LIMIT = 1 << 30  # datasets below 1 GiB are copied before training


def stage_dataset(data_yaml: Path, dest: Path) -> Path:
    """Copy a small dataset next to the run and return its data YAML there.

    Ultralytics writes `labels/*.cache` beside the data; the copy keeps the user's (or a read-only shared)
    dataset untouched. Larger datasets are used in place.
    """
    import shutil

    import yaml

    from posebench.evaluate.data import dataset_root

    spec = yaml.safe_load(data_yaml.read_text()) or {}
    root = dataset_root(data_yaml, spec).resolve()
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    if size > STAGE_LIMIT:
        return data_yaml
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(root, dest, ignore=shutil.ignore_patterns("*.cache"))
    staged = dest / f"{data_yaml.stem}.posebench.yaml"
    staged.write_text(yaml.safe_dump({**spec, "path": str(dest.resolve())}, sort_keys=False))
    return staged


def train(yolo: Any, recipe: Recipe, *, data: Path, out_dir: Path, epochs: int, imgsz: int, batch: int,
          callbacks: PruningCallbacks | HeldZeros | None = None, device: str = "cpu", lr0: float | None = None,
          trainer: type | None = None, say: Any = None, resume: Path | None = None) -> Path:
    """Fine-tune `yolo` in place with Ultralytics' trainer (or the `trainer` class given, e.g. for QAT);
    returns the last checkpoint (final sparsity). `say(message)` gets progress lines (`RecoveryProgress`)."""
    if callbacks is not None:
        callbacks.register(yolo)
    if say is not None:
        RecoveryProgress(say).register(yolo)
    if recipe.frozen_batchnorm():
        FrozenBatchNorm().register(yolo)
    ft = recipe.finetune
    if resume is None:
        data = stage_dataset(data, out_dir / "data")
    else:  # Ultralytics' own resume: optimizer, EMA, epoch and schedule from last.pt; the data staged the first time
        staged = out_dir / "data" / f"{data.stem}.posebench.yaml"
        data = staged if staged.is_file() else data
    yolo.train(trainer=trainer, data=str(data), epochs=epochs, imgsz=imgsz, batch=batch,
               **({"resume": str(resume)} if resume is not None else {}),
               lr0=ft.lr0 if lr0 is None else lr0, lrf=ft.lrf,
               optimizer=ft.optimizer, workers=ft.workers, device=device, project=str(out_dir.resolve()),
               name="train",
               exist_ok=True, plots=False, val=False, amp=False, warmup_epochs=0, close_mosaic=0, verbose=False,
               mosaic=ft.mosaic,
               seed=0, deterministic=True, nbs=batch)
    # nbs=batch: one optimizer step per batch. Ultralytics' nominal batch of 64 accumulates gradients over 64
    # images, so recovery on a few hundred frames made a handful of steps (3 epochs on 150 frames: 7).
    # last.pt, not best.pt: with a gradual schedule an early "best" epoch is less sparse than asked
    return Path(yolo.trainer.last)
