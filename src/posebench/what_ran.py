"""What a trial ran, as its record says it: the runtime spec's name and options, the `Identity` (one constructor for
bench, val, stream and a trial that never ran) and the warnings its artifact needs on this machine."""

from __future__ import annotations

from typing import Any

from posebench.models import ModelSource
from posebench.record import Identity
from posebench.runtimes import backend_class
from posebench.runtimes.base import parse_runtime_spec
from posebench.trial import Trial


def runtime_options(plan_options: dict[str, dict[str, Any]], spec: str) -> tuple[str, dict[str, Any]]:
    """A runtime spec ('tensorrt[precision=fp16]') -> its name and options (the plan's for that runtime, then the
    spec's own)."""
    name, own = parse_runtime_spec(spec)
    return name, {**plan_options.get(name, {}), **own}


def identity(source: ModelSource, *, variant: str, runtime: str, options: dict[str, Any] | None, threads: int,
             imgsz: tuple[int, int], meta: dict[str, Any] | None, model_name: str | None = None,
             mode: str = "model", pipeline: dict[str, Any] | None = None) -> Identity:
    """What one run of `source` on `runtime` is: its artifact format, the options that change what runs, and its
    precision (the runtime's option, else the artifact's metadata, else fp32)."""
    cls = backend_class(runtime)
    own = cls.identity(options)
    return Identity(model=model_name or source.name, source_id=source.identity(), variant=variant, runtime=runtime,
                    threads=threads, imgsz=tuple(imgsz), format=cls.artifact_format,  # type: ignore[arg-type]
                    precision=own.get("precision") or (meta or {}).get("precision", "fp32"), options=own, mode=mode,
                    pipeline=pipeline)


def unknown_identity(trial: Trial) -> Identity:
    """The identity of a trial that did not run: what was asked, no artifact (format '-')."""
    return Identity(model=trial.name, source_id="", variant=trial.variant, runtime=trial.runtime,
                    threads=trial.threads, imgsz=tuple(trial.imgsz), format="-")  # type: ignore[arg-type]


def artifact_warnings(meta: dict[str, Any] | None, env: dict[str, Any], runtime: str) -> list[str]:
    """What a reader of this record must know about the artifact on this machine (int8 path mismatch)."""
    from posebench.machine.isa import SATURATING, int8_mismatch

    meta = meta or {}
    kernels = backend_class(runtime).cpu_int8
    if meta.get("precision") != "int8" or not kernels:
        return []
    target = (meta.get("quantization") or {}).get("int8_target") or {}
    running = env.get("int8_path", "generic")
    if not target and meta.get("source_kind") == "artifact":  # made elsewhere: its int8 path is unknown
        if running in SATURATING and kernels == "u8s8":
            return [f"int8 artifact made elsewhere, built for an unknown int8 path; this CPU's u8 x s8 kernels "
                    f"({running}) saturate with full 8-bit weights: check its accuracy here with posebench val"]
        return []
    if not target:  # built before posebench recorded int8 targets: full 8-bit weights unless reduce_range
        if running in SATURATING and not (meta.get("quantization") or {}).get("reduce_range"):
            return [f"int8 target not recorded (full 8-bit weights) and this CPU's int8 kernels ({running}) "
                    "saturate: accuracy may drop; rebuild the bundle with this posebench"]
        return []
    warning = int8_mismatch(target.get("target"), running)
    return [warning] if warning else []
