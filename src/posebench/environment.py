"""Fingerprint of the machine and software a result was measured on.

Every record carries one, so results from several machines can be merged and told apart. Versions
are read from package metadata, so fingerprinting never imports a runtime.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import socket
import subprocess
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from posebench import __version__
from posebench.errors import InvalidInputError
from posebench.isa import int8_target_of

# ISA extensions that decide CPU inference speed (int8 dot products, wide vectors, AMX).
ISA_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
    "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16", "asimd", "sve",
)  # fmt: skip
PACKAGES = (
    "numpy", "torch", "torchvision", "ultralytics", "onnx", "onnxruntime", "onnxruntime-gpu",
    "openvino", "nncf", "tensorrt", "deepsparse", "opencv-python",
)  # fmt: skip


def _cpuinfo(path: Path = Path("/proc/cpuinfo")) -> tuple[str, set[str]]:
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
    return capped_flags(_cpuinfo()[1], onednn_isa_cap())


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that matter for a measurement (absent ones omitted)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def fingerprint(extra_versions: dict[str, str] | None = None) -> dict[str, Any]:
    """Describe this machine and software stack; `machine_id` is stable across runs on one host."""
    from posebench.roofline import clock_ghz

    from posebench.microarch import lookup, read_identity

    cpu_model, native = _cpuinfo()
    identity = read_identity()
    cap = onednn_isa_cap()
    flags = capped_flags(native, cap)
    clock = clock_ghz(native, cpu_model, identity=identity)
    cores = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    host = socket.gethostname()
    env = {
        "hostname": host,
        "cpu_model": cpu_model,
        **({"cpu_vendor": identity.vendor, "cpu_family": identity.family, "cpu_model_number": identity.model,
            "microarchitecture": lookup(identity, native)[1]} if identity else {}),
        "logical_cores": cores,
        "usable_cores": usable,
        "isa": sorted(f for f in ISA_FLAGS if f in flags),
        "int8_path": int8_target_of(flags),
        "clock_ghz": clock[0],
        "clock_source": clock[1],
        "arch": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "posebench": __version__,
        "versions": {**package_versions(), **(extra_versions or {})},
        "gpus": gpu_names(),
    }
    if cap is not None:  # a capped machine is recorded as what it ran as, and what it is
        env["onednn_max_cpu_isa"] = cap
        env["native_isa"] = sorted(f for f in ISA_FLAGS if f in native)
        env["native_int8_path"] = int8_target_of(native)
    identity = json.dumps([host, cpu_model, cores, env["arch"]], sort_keys=True)
    env["machine_id"] = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return env


def ran_as(env: dict[str, Any]) -> str:
    """How a record's CPU ran, in words: its int8 path, and the oneDNN cap with the CPU's own path when capped."""
    path = str(env.get("int8_path") or env.get("arch") or "cpu")
    cap = env.get("onednn_max_cpu_isa")
    return f"{path}; oneDNN capped at {cap} on an {env.get('native_int8_path')} CPU" if cap else path


def gpu_names() -> list[str]:
    """NVIDIA GPUs of this machine as `nvidia-smi` names them (no runtime imported); [] without one."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def machine_kinds(env: dict[str, Any]) -> list[str]:
    """The hardware kinds a machine counts as for a study's `targets`: its int8 path (avx2, avx512,
    avx512_vnni, avx_vnni, amx) and `cuda` when it has an NVIDIA GPU."""
    kinds = [str(env.get("int8_path") or env.get("arch") or "cpu")]
    return kinds + (["cuda"] if env.get("gpus") else [])
