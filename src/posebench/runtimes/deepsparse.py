"""DeepSparse 1.8 (end-of-life since June 2025), kept as an isolated legacy backend.

DeepSparse needs Python 3.11, numpy<2 and onnx<1.15, which cannot share an environment with the
rest of posebench, so it runs in its own virtual environment as a worker process. The worker times
the engine call itself. DeepSparse Community is licensed for non-commercial use only.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from posebench.errors import ModelLoadError, RuntimeNotInstalledError
from posebench.latency import LatencyProtocol, LatencyStats
from posebench.runtimes import wire
from posebench.runtimes.base import Backend

SRC_DIR = Path(__file__).resolve().parents[2]  # the directory that holds the posebench package
WORKER = Path(__file__).with_name("deepsparse_worker.py")
INSTALL_HINT = (
    "run `make env` (creates .venv-deepsparse), or: python3.11 -m venv .venv-deepsparse && "
    ".venv-deepsparse/bin/pip install deepsparse==1.8.0 'numpy<2' 'onnx<1.15'; "
    "then pass --deepsparse-python PATH or set POSEBENCH_DEEPSPARSE_PYTHON"
)


def find_deepsparse_python(explicit: str | os.PathLike | None = None) -> Path:
    """Locate the interpreter of the DeepSparse environment, or raise with the install steps.

    An interpreter named explicitly (argument, then POSEBENCH_DEEPSPARSE_PYTHON) must exist; otherwise
    `.venv-deepsparse` beside the project or in the current folder is used.
    """
    named = explicit or os.environ.get("POSEBENCH_DEEPSPARSE_PYTHON")
    if named:
        if Path(named).is_file():
            return Path(named)
        raise RuntimeNotInstalledError(f"runtime 'deepsparse': the interpreter {named} does not exist. "
                                       f"To install the DeepSparse environment: {INSTALL_HINT}")
    for root in (SRC_DIR.parent, Path.cwd()):
        candidate = root / ".venv-deepsparse" / "bin" / "python"
        if candidate.is_file():
            return candidate
    raise RuntimeNotInstalledError(f"runtime 'deepsparse' is not installed (no DeepSparse environment found). "
                                   f"To install it: {INSTALL_HINT}")


COVERAGE_SCRIPT = "import sys; from deepsparse import Engine; Engine(model=sys.argv[1], batch_size=1, num_cores=int(sys.argv[2]))"


def engine_coverage(model: Path, *, threads: int = 1, python: str | os.PathLike | None = None,
                    timeout: float = 600) -> dict[str, Any]:
    """What DeepSparse's engine takes of an ONNX model, from its own diagnostics (NM_LOGGING_LEVEL=info): the share
    of the network it compiles (`percent`; the rest runs in its bundled ONNX Runtime), compiled `subgraphs`, the
    ops it refuses with its reasons (`unsupported`: "Op: reason" -> count), and a compile failure or engine
    assertion if one ended the attempt (`failure`)."""
    import re
    from collections import Counter

    interpreter = find_deepsparse_python(python)
    env = {**os.environ, "NM_LOGGING_LEVEL": "info"}
    try:
        done = subprocess.run([str(interpreter), "-c", COVERAGE_SCRIPT, str(model), str(threads)], env=env,
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ModelLoadError(f"deepsparse took over {timeout:.0f} s to compile {model}") from exc
    log = done.stdout + done.stderr
    percent = re.findall(r"supports ([\d.]+)% of the network", log)
    subgraphs = re.findall(r"Created (\d+) compiled subgraphs", log)
    unsupported = Counter(f"{m.group(1)}: {m.group(2).strip()}"
                          for m in re.finditer(r"Unsupported (\S+) \S+, ([^\n]+)", log))
    failure = [m.group(1).strip() for m in re.finditer(r"FAILED TO COMPILE ====\s*\n\s*Message: ([^\n]+)", log)]
    failure += [f"engine assertion at {m.group(1)}" for m in re.finditer(r"Assertion at (\S+)", log)]
    return {"percent": float(percent[-1]) if percent else 0.0, "subgraphs": int(subgraphs[-1]) if subgraphs else 0,
            "unsupported": dict(unsupported), "failure": failure[0] if failure else None,
            "exit_code": done.returncode}


class DeepSparseBackend(Backend):
    """options: `python` (the DeepSparse environment's interpreter); `fast_vnni_emulation` (on CPUs without VNNI
    DeepSparse emulates its int8 dot products exactly; true sets NM_FAST_VNNI_EMULATION=1, its faster, less exact
    emulation: "increase performance at the expense of accuracy", in its own words)."""

    name = "deepsparse"
    artifact_format = "onnx"
    cpu_int8 = "u8s8"
    prefers = ("deepsparse",)  # an int8 bundle's ConvInteger form (posebench.export.deepsparse_form)
    install_hint = INSTALL_HINT
    identity_options = {"fast_vnni_emulation": False}

    @classmethod
    def check_installed(cls) -> None:
        find_deepsparse_python()

    def __init__(self, artifact: Path, *, threads: int, options: dict[str, Any] | None = None):
        super().__init__(artifact, threads=threads, options=options)
        python = find_deepsparse_python(self.options.get("python"))
        env = dict(os.environ)
        if str(self.options.get("fast_vnni_emulation", False)).lower() in ("1", "true", "yes"):
            env["NM_FAST_VNNI_EMULATION"] = "1"
        self._proc = subprocess.Popen([str(python), str(WORKER), str(SRC_DIR)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=sys.stderr, env=env)
        try:
            self._info = self._call({"cmd": "load", "model": str(self.artifact), "threads": self.threads})[0]["info"]
        except Exception:
            self.close()
            raise

    def _call(self, header: dict[str, Any], arrays: list[np.ndarray] = ()) -> tuple[dict, list[np.ndarray]]:
        try:
            wire.send(self._proc.stdin, header, arrays)
            reply, outputs = wire.receive(self._proc.stdout)
        except (EOFError, BrokenPipeError) as exc:
            code = self._proc.poll()
            raise ModelLoadError(f"the DeepSparse worker died (exit code {code}) while running "
                                 f"'{header['cmd']}' on {self.artifact}; its messages are above") from exc
        if not reply.get("ok"):
            raise ModelLoadError(f"deepsparse could not {header['cmd']} {self.artifact}: {reply.get('error')}")
        return reply, outputs

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        return self._call({"cmd": "infer"}, [batch])[1]

    def measure(self, batch: np.ndarray, protocol: LatencyProtocol) -> LatencyStats:
        stats = self._call({"cmd": "measure", "protocol": dataclasses.asdict(protocol)}, [batch])[0]["stats"]
        return LatencyStats(**stats)

    def info(self) -> dict[str, Any]:
        return {**super().info(), **self._info, "device": "cpu", "timed_in": "worker"}

    def close(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is None or proc.poll() is not None:
            return
        try:
            wire.send(proc.stdin, {"cmd": "close"})
            proc.stdin.close()
            proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            proc.kill()
            proc.wait()
