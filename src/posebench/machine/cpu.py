"""This CPU as its kernels see it: model name and feature flags (`/proc/cpuinfo`), oneDNN's ISA caps
(`ONEDNN_MAX_CPU_ISA`), bf16 arithmetic, and the cores this process may use. The bottom of `posebench.machine`."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable
from pathlib import Path

from posebench.errors import InvalidInputError

# ISA extensions that decide CPU inference speed (int8 dot products, wide vectors, AMX).
ISA_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
    "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16", "asimd", "sve",
)  # fmt: skip


def cpuinfo(path: Path = Path("/proc/cpuinfo")) -> tuple[str, set[str]]:
    """Return the CPU model name and its feature flags (Linux); best effort elsewhere."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        text = path.read_text()
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and value.strip():
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return model, flags


# oneDNN's ISA levels (ONEDNN_MAX_CPU_ISA), lowest first, each with the CPU flags it adds to the one before.
ONEDNN_ISA_LEVELS = (
    ("SSE41", {"sse4_1", "sse4_2"}), ("AVX", {"avx", "f16c"}), ("AVX2", {"avx2", "fma"}),
    ("AVX2_VNNI", {"avx_vnni"}), ("AVX2_VNNI_2", {"avx_vnni_int8", "avx_ne_convert"}),
    ("AVX512_CORE", {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"}),
    ("AVX512_CORE_VNNI", {"avx512_vnni"}), ("AVX512_CORE_BF16", {"avx512_bf16"}),
    ("AVX512_CORE_FP16", {"avx512_fp16"}), ("AVX512_CORE_AMX", {"amx_tile", "amx_int8", "amx_bf16"}),
)  # fmt: skip
X86_ISA_FLAGS = frozenset().union(*(added for _, added in ONEDNN_ISA_LEVELS))


def onednn_isa_cap() -> str | None:
    """The ISA cap a user set for oneDNN (`ONEDNN_MAX_CPU_ISA`, or its old name `DNNL_MAX_CPU_ISA`), upper case;
    None when unset or ALL. OpenVINO's CPU plugin and torch's oneDNN kernels obey it (ONNX Runtime's MLAS does
    not), so an AVX-512 machine runs their AVX2 kernels under `ONEDNN_MAX_CPU_ISA=AVX2`."""
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").strip().upper()
    return cap if cap and cap not in ("ALL", "DEFAULT") else None


def capped_flags(flags: set[str], cap: str | None) -> set[str]:
    """The flags a CPU keeps under a oneDNN ISA cap (x86 vector flags above the cap removed). Unknown caps are
    refused: a misspelt cap would otherwise record a machine as something it does not run as."""
    if cap is None:
        return set(flags)
    levels = [name for name, _ in ONEDNN_ISA_LEVELS]
    aliases = {"AVX10_1_512": "AVX512_CORE_FP16", "AVX10_1_512_AMX": "AVX512_CORE_AMX",
               "AVX512_CORE_AMX_FP16": "AVX512_CORE_AMX", "AVX10_1_512_AMX_FP16": "AVX512_CORE_AMX"}
    cap = aliases.get(cap, cap)
    if cap not in levels:
        raise InvalidInputError(f"ONEDNN_MAX_CPU_ISA={cap} is not a oneDNN ISA level (one of {', '.join(levels)}, ALL)")
    allowed = set().union(*(added for _, added in ONEDNN_ISA_LEVELS[: levels.index(cap) + 1]))
    return {f for f in flags if f not in X86_ISA_FLAGS or f in allowed}


BF16_ISA = ("avx512_bf16", "amx_bf16")


def bf16_arithmetic(isa: Iterable[str]) -> bool:
    """Whether a CPU with these ISA flags (the fingerprint's `isa`, or `cpu_flags()`) computes in bf16 (AVX512_BF16
    or AMX): where OpenVINO runs float parts in bf16 unless told otherwise."""
    return bool(set(BF16_ISA) & set(isa))


def cpu_flags() -> set[str]:
    """This CPU's feature flags as its oneDNN kernels see them (`/proc/cpuinfo`, under `ONEDNN_MAX_CPU_ISA` when
    set; empty where unknown)."""
    return capped_flags(cpuinfo()[1], onednn_isa_cap())


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one, else all of them)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
