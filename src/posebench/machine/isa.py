"""Which int8 kernels a CPU runs, and the quantization settings that keep accuracy on them.

x86 int8 convolutions multiply uint8 activations by int8 weights. With VNNI (`vpdpbusd`, AVX-512
VNNI or AVX-VNNI) or AMX the products are summed straight into int32. Without it (AVX2, and
AVX-512 without VNNI) the kernels use `vpmaddubsw`, which adds *pairs* of u8 x s8 products into a
saturating int16: 2 x 255 x 127 = 64770 does not fit, so large activations meeting large weights
of one sign are clipped. ONNX Runtime's MLAS kernels take that path (its documented remedies:
`reduce_range`, 7-bit weights, or U8U8); oneDNN (OpenVINO) halves the weights itself on such
CPUs (NNCF's `overflow_fix`, first layer by default, is its recommendation there). posebench measured the effect: the default
int8 bundle of yolo11n-pose built full-range scores pose mAP50-95 -3.1 points through ONNX Runtime
on an AVX2 EPYC and 0.0 on an AVX-512 VNNI machine (`benchmarks/results/int8_isa-*.md`).

A bundle records the int8 *target* it was built for; running it on a CPU whose int8 path differs
puts a warning in the record.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# int8 kernel families, fastest first. "generic": SSE or non-x86 (no int8 assumption).
INT8_TARGETS = ("amx", "avx512_vnni", "avx_vnni", "avx512", "avx2", "generic")
SATURATING = frozenset({"avx512", "avx2", "generic"})  # u8 x s8 pairs summed in a saturating int16


def int8_target_of(flags: Iterable[str]) -> str:
    """The int8 kernel family a CPU with these `/proc/cpuinfo` flags runs (ONNX Runtime's MLAS dispatch order)."""
    flags = set(flags)
    if {"amx_tile", "amx_int8"} <= flags:
        return "amx"
    if "avx512_vnni" in flags and "avx512bw" in flags:
        return "avx512_vnni"
    if "avx_vnni" in flags:
        return "avx_vnni"
    if "avx512bw" in flags:
        return "avx512"
    if "avx2" in flags:
        return "avx2"
    return "generic"


def this_machine() -> str:
    """This CPU's int8 kernel family."""
    from posebench.machine.cpu import cpu_flags

    return int8_target_of(cpu_flags())


@dataclass(frozen=True)
class Int8Choice:
    """Quantization settings picked for an int8 target, and why (recorded in every int8 bundle)."""

    target: str  # one of INT8_TARGETS
    reduce_range: bool  # ONNX Runtime: 7-bit weights (QDQ models for onnxruntime and deepsparse)
    overflow_fix: str  # NNCF (OpenVINO IR): "first_layer_only" (its default and its advice for AVX2/AVX-512) or "enable"
    reason: str
    built_on: str  # the int8 family of the machine that built (and checked) the bundle

    def to_dict(self) -> dict[str, object]:
        return {"target": self.target, "reduce_range": self.reduce_range, "overflow_fix": self.overflow_fix,
                "reason": self.reason, "built_on": self.built_on}


def choose_int8(target: str = "auto", reduce_range: bool | None = None) -> Int8Choice:
    """Settings for `target` ("auto" = this machine); `reduce_range` True/False overrides the choice (said in
    the reason)."""
    from posebench.errors import InvalidInputError, did_you_mean

    here = this_machine()
    if target == "auto":
        target = here
    if target not in INT8_TARGETS:
        raise InvalidInputError(f"unknown int8 target '{target}'.{did_you_mean(target, INT8_TARGETS)} "
                                f"Known: auto, {', '.join(INT8_TARGETS)}")
    saturating = target in SATURATING
    picked = saturating if reduce_range is None else bool(reduce_range)
    if saturating:
        why = (f"{target} has no VNNI: its int8 kernels sum u8 x s8 pairs in a saturating int16 (vpmaddubsw), so the "
               "QDQ model (onnxruntime, deepsparse) gets 7-bit weights (reduce_range); OpenVINO halves weights itself "
               "there, NNCF's first-layer overflow fix covers the rest")
    else:
        why = f"{target} sums int8 products in int32 (VNNI/AMX): full 8-bit weights"
    if reduce_range is not None and picked != saturating:
        why += f"; overridden by the recipe: reduce_range {str(picked).lower()}" + (
            " (accuracy may drop on this target)" if saturating and not picked else "")
    return Int8Choice(target=target, reduce_range=picked, overflow_fix="first_layer_only",
                      reason=why, built_on=here)


def int8_mismatch(built_for: str | None, running_on: str) -> str | None:
    """A warning when an int8 artifact runs on a CPU whose int8 path differs from its target, else None."""
    if not built_for or built_for == running_on:
        return None
    if running_on in SATURATING and built_for not in SATURATING:
        return (f"int8 path differs: built for {built_for} (full 8-bit weights), running on {running_on} whose "
                "int8 kernels saturate (no VNNI): accuracy may drop; rebuild with --target-isa "
                f"{running_on} (or auto on this machine)")
    return (f"int8 path differs: built for {built_for}, running on {running_on}: accuracy was checked on the "
            f"target's kernels, not these" + ("; 7-bit weights cost a little accuracy here, rebuild with "
                                              "--target-isa auto" if built_for in SATURATING else ""))


# What a speed figure depends on, coarsely: the int8 kernel family and whether float parts can run in bf16. A ratio
# measured on one kind is stated with it (README, docs/results.md, model cards), never as general.
CPU_KINDS = {
    "amx": "AMX (Intel Xeon Sapphire Rapids class: AVX-512 VNNI, bf16, AMX)",
    "avx512_vnni_bf16": "AVX-512 VNNI + bf16, no AMX (e.g. AMD EPYC Zen 4 / Zen 5)",
    "avx512_vnni": "AVX-512 VNNI, no bf16 (e.g. Intel Xeon Cascade Lake)",
    "avx_vnni": "AVX-VNNI (e.g. Intel Alder Lake)",
    "avx512": "AVX-512 without VNNI (e.g. Intel Xeon Skylake-SP)",
    "avx2": "AVX2 only (e.g. AMD EPYC Zen 2)",
    "generic": "no AVX2 (SSE or non-x86)",
}


def cpu_kind(flags: Iterable[str]) -> str:
    """The kind a CPU with these ISA flags (the fingerprint's `isa`, capped by ONEDNN_MAX_CPU_ISA) counts as for
    speed: its int8 kernel family, with `_bf16` where AVX-512 VNNI comes with AVX512_BF16."""
    flags = set(flags)
    family = int8_target_of(flags)
    return "avx512_vnni_bf16" if family == "avx512_vnni" and "avx512_bf16" in flags else family
