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
from importlib import metadata
from pathlib import Path
from typing import Any

from posebench import __version__
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


def cpu_flags() -> set[str]:
    """This CPU's feature flags (`/proc/cpuinfo`; empty where unknown)."""
    return _cpuinfo()[1]


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

    cpu_model, flags = _cpuinfo()
    clock = clock_ghz(flags, cpu_model)
    cores = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    host = socket.gethostname()
    env = {
        "hostname": host,
        "cpu_model": cpu_model,
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
    identity = json.dumps([host, cpu_model, cores, env["arch"]], sort_keys=True)
    env["machine_id"] = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return env


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
