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
from typing import Any

from posebench import __version__
from posebench.machine.cpu import ISA_FLAGS, capped_flags, cpuinfo, onednn_isa_cap, usable_cores
from posebench.machine.isa import cpu_kind, int8_target_of

PACKAGES = (
    "numpy", "torch", "torchvision", "ultralytics", "onnx", "onnxruntime", "onnxruntime-gpu",
    "openvino", "nncf", "tensorrt", "deepsparse", "opencv-python",
)  # fmt: skip


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
    from posebench.machine.microarch import lookup, read_identity
    from posebench.machine.roofline import clock_ghz

    cpu_model, native = cpuinfo()
    identity = read_identity()
    cap = onednn_isa_cap()
    flags = capped_flags(native, cap)
    clock = clock_ghz(native, cpu_model, identity=identity)
    cores = os.cpu_count() or 1
    usable = usable_cores()
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
        "cpu_kind": cpu_kind(flags),
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
