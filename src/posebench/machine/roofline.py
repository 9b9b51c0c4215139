"""Roofline sanity: the work an artifact does per inference, and the most a CPU could do per second.

- Work: multiply-accumulates of every Conv / MatMul / Gemm in the ONNX graph (x2 = operations), split into
  float and int8 (a conv whose weights arrive through DequantizeLinear runs in int8). Element-wise ops are
  left out: the figure is a lower bound of the work, so achieved = ops / latency is a lower bound too.
- Peak: cores x clock x operations per cycle and core from the ISA. fp32 per cycle and core: 64 with AVX-512 on
  Intel (two 512-bit FMA units, the upper case), 32 with AVX-512 on AMD Zen 4 (two 256-bit FMA pipes) and with
  AVX2 + FMA, 16 with AVX, 8 with SSE. int8: x4 with VNNI (vpdpbusd), x1.33 without (vpmaddubsw + vpmaddwd +
  vpaddd), 2048 per cycle with AMX. Clock: the larger of what the OS reports (cpufreq max, else /proc/cpuinfo
  MHz, often only the nominal clock in a VM) and what a measured single-core SGEMM implies at 90 % efficiency
  (on the development AMD EPYC VM: 2.60 GHz reported, 105.8 GFLOP/s per core -> 3.67 GHz, its boost clock).

A measured or quoted latency whose achieved rate exceeds the peak is impossible as stated: something other
than a dense batch-1 inference was timed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posebench.machine.microarch import CpuId, lookup, read_identity

INT8_PER_FP32 = {"amx": None, "avx512_vnni": 4.0, "avx_vnni": 4.0, "avx512": 4 / 3, "avx2": 4 / 3, "generic": 1.0}
AMX_INT8_PER_CYCLE = 2048.0


def count_ops(onnx_path: str | os.PathLike) -> dict[str, float]:
    """Operations (2 x MACs) of the Conv / MatMul / Gemm nodes of an ONNX model: float and int8."""
    import numpy as np
    import onnx
    from onnx import shape_inference

    model = shape_inference.infer_shapes(onnx.load(str(onnx_path)))
    graph = model.graph
    shapes: dict[str, list[int]] = {}
    for vi in list(graph.value_info) + list(graph.output) + list(graph.input):
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        if dims and all(d > 0 for d in dims):
            shapes[vi.name] = dims
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)
    dequantized = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    for n in graph.node:  # a DequantizeLinear output has its input's shape
        if n.op_type == "DequantizeLinear" and n.input[0] in shapes:
            shapes.setdefault(n.output[0], shapes[n.input[0]])
    flops = int8 = 0.0
    for node in graph.node:
        macs = 0.0
        if node.op_type == "Conv" and node.input[1] in shapes and node.output[0] in shapes:
            w, out = shapes[node.input[1]], shapes[node.output[0]]
            macs = float(np.prod(out, dtype=np.float64)) * float(np.prod(w[1:], dtype=np.float64))
        elif node.op_type in ("MatMul", "Gemm") and all(i in shapes for i in node.input[:2]) \
                and node.output[0] in shapes:
            a = shapes[node.input[0]]
            macs = float(np.prod(shapes[node.output[0]], dtype=np.float64)) * float(a[-1])
        if not macs:
            continue
        quantized = len(node.input) > 1 and node.input[1] in dequantized
        if quantized:
            int8 += 2 * macs
        else:
            flops += 2 * macs
    return {"float_ops": flops, "int8_ops": int8, "ops": flops + int8}


def count_ops_openvino(xml_path: str | os.PathLike) -> dict[str, float]:
    """The same count on an OpenVINO IR (an imported one has no ONNX): Convolution / GroupConvolution / MatMul;
    int8 where the weights come through a FakeQuantize or an integer constant."""
    import numpy as np
    import openvino as ov

    model = ov.Core().read_model(str(xml_path))
    flops = int8 = 0.0
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind not in ("Convolution", "GroupConvolution", "MatMul"):
            continue
        out = op.get_output_partial_shape(0)
        w = op.get_input_partial_shape(1)
        if not (out.is_static and w.is_static):
            continue
        out, w = [d.get_length() for d in out], [d.get_length() for d in w]
        if kind == "Convolution":
            macs = float(np.prod(out, dtype=np.float64)) * float(np.prod(w[1:], dtype=np.float64))
        elif kind == "GroupConvolution":  # weights (groups, out/groups, in/groups, kh, kw)
            macs = float(np.prod(out, dtype=np.float64)) * float(np.prod(w[2:], dtype=np.float64))
        else:
            a = [d.get_length() for d in op.get_input_partial_shape(0)]
            macs = float(np.prod(out, dtype=np.float64)) * float(a[-1])
        source = op.input_value(1).get_node()
        while source.get_type_name() in ("Convert", "Multiply", "Subtract", "Reshape") and source.get_input_size():
            source = source.input_value(0).get_node()
        quantized = source.get_type_name() == "FakeQuantize" or (
            source.get_type_name() == "Constant" and source.get_element_type().is_integral())
        if quantized:
            int8 += 2 * macs
        else:
            flops += 2 * macs
    return {"float_ops": flops, "int8_ops": int8, "ops": flops + int8}


def reported_clock_ghz() -> tuple[float, str]:
    """The fastest clock the OS reports, and where it came from."""
    cpufreq = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    try:
        return int(cpufreq.read_text()) / 1e6, "cpufreq max"
    except (OSError, ValueError):
        pass
    try:
        mhz = [float(line.split(":")[1]) for line in Path("/proc/cpuinfo").read_text().splitlines()
               if line.startswith("cpu MHz")]
        if mhz:
            return max(mhz) / 1000, "/proc/cpuinfo MHz"
    except OSError:
        pass
    return 0.0, "no clock reported"


SGEMM_EFFICIENCY = 0.9  # a tuned single-core SGEMM reaches about this fraction of the core's fp32 peak

# An FMA-bound probe: a 1024^3 fp32 MatMul through ONNX Runtime's own GEMM kernels (MLAS picks AVX-512 / AVX2 by
# CPUID), on one thread. Not numpy's BLAS: OPENBLAS_CORETYPE may pin OpenBLAS to an older core's kernels here.
SGEMM_PROBE = """
import time, numpy as np, onnxruntime as ort
from onnx import TensorProto, helper
n = 1024
io = [helper.make_tensor_value_info(k, TensorProto.FLOAT, [n, n]) for k in "aby"]
graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["y"])], "sgemm", io[:2], io[2:])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
so = ort.SessionOptions(); so.intra_op_num_threads = 1; so.inter_op_num_threads = 1
session = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
rng = np.random.default_rng(0)
feeds = {"a": rng.random((n, n), dtype=np.float32), "b": rng.random((n, n), dtype=np.float32)}
for _ in range(3): session.run(None, feeds)
best = 0.0
for _ in range(12):
    t = time.perf_counter(); session.run(None, feeds); best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
print(best)
"""
PROBE_NAME = "ONNX Runtime 1-thread SGEMM (1024^3)"


def sgemm_gflops_one_core() -> float:
    """Best single-thread float32 GEMM rate (ONNX Runtime's MLAS, 1024^3) in a fresh process; 0 if it cannot run."""
    import subprocess
    import sys

    env = {**os.environ, **{k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
    try:
        out = subprocess.run([sys.executable, "-c", SGEMM_PROBE], env=env, capture_output=True, text=True,
                             timeout=120, check=True)
        return float(out.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, OSError, IndexError):
        return 0.0


def clock_ghz(isa: set[str] | list[str] | None = None, cpu_model: str = "",
              cache_dir: Path | None = None, identity: CpuId | None | str = "read") -> tuple[float, str]:
    """The clock the peak is computed with: the larger of the reported clock and the clock a measured
    single-core SGEMM implies (rate / (fp32 ops per cycle x 0.9)). VMs report the nominal clock while the
    cores boost above it, so the measured figure is what keeps the peak an upper bound. Measured once per
    machine and cached (~/.cache/posebench/clock-*.json)."""
    import hashlib
    import json
    import socket

    from posebench.machine.cpu import cpuinfo

    reported, source = reported_clock_ghz()
    model, flags = cpuinfo()
    isa = set(isa) if isa is not None else flags
    cpu_model = cpu_model or model
    identity = read_identity() if identity == "read" else identity
    per_cycle, _ = fp32_per_cycle(isa, cpu_model, identity)
    key = hashlib.sha256(f"{socket.gethostname()}|{cpu_model}|{sorted(isa)}|{PROBE_NAME}".encode()).hexdigest()[:12]
    cache = (cache_dir or Path.home() / ".cache" / "posebench") / f"clock-{key}.json"
    try:
        rate = float(json.loads(cache.read_text())["sgemm_gflops_one_core"])
    except (OSError, ValueError, KeyError):
        rate = sgemm_gflops_one_core()
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps({"sgemm_gflops_one_core": rate, "cpu_model": cpu_model, "probe": PROBE_NAME}))
        except OSError:
            pass
    implied = rate / (per_cycle * SGEMM_EFFICIENCY)
    if implied > reported:
        return implied, (f"implied by a measured {PROBE_NAME} of {rate:.1f} GFLOP/s at {SGEMM_EFFICIENCY:.0%} "
                         f"efficiency; the OS reports {reported:.2f} GHz ({source}), a nominal clock the cores "
                         "boost above")
    return (reported, source) if reported else (3.0, "no clock known: 3.0 GHz assumed")


def fp32_per_cycle(isa: set[str] | list[str], cpu_model: str, identity: CpuId | None = None) -> tuple[float, str]:
    """fp32 operations per cycle and core, with the reasoning: from the core's CPUID identity when it is known
    (`posebench.machine.microarch`), else the ISA's upper bound; records made before identities were kept (no identity)
    keep the vendor-name rule they were made with."""
    isa = set(isa)
    if identity is not None:
        core, how = lookup(identity, isa)
        if core is not None:
            return core.fp32_per_cycle, how
        if "avx512f" in isa:
            return 64.0, f"AVX-512, at most two 512-bit FMA units ({how}: the upper bound)"
    elif "avx512f" in isa:
        if "AMD" in cpu_model.upper():
            return 32.0, "AVX-512 on AMD (Zen 4: two 256-bit FMA pipes; no CPUID identity recorded)"
        return 64.0, "AVX-512 (two 512-bit FMA units)"
    if "avx2" in isa and "fma" in isa:
        return 32.0, "AVX2 + FMA (two 256-bit FMA units)"
    if "avx" in isa:
        return 16.0, "AVX"
    return 8.0, "SSE"


def identity_of(env: dict[str, Any]) -> CpuId | None:
    """The CPUID identity a fingerprint recorded (None for records made before it was kept)."""
    try:
        return CpuId(str(env["cpu_vendor"]), int(env["cpu_family"]), int(env["cpu_model_number"]))
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Peak:
    """The most operations per second a CPU could do at one thread count."""

    fp32_gops: float
    int8_gops: float
    basis: str

    def bound_ms(self, ops: dict[str, float]) -> float:
        """The fastest possible inference: float work at the fp32 peak plus int8 work at the int8 peak."""
        return (ops.get("float_ops", 0.0) / self.fp32_gops + ops.get("int8_ops", 0.0) / self.int8_gops) / 1e6


def cpu_peak(env: dict[str, Any], threads: int, *, clock: tuple[float, str] | None = None) -> Peak:
    """Peak of `threads` cores of the machine described by a fingerprint (`posebench.machine.environment`)."""
    from posebench.machine.isa import int8_target_of

    isa = set(env.get("isa", []))
    if clock is None:
        clock = (float(env["clock_ghz"]), str(env.get("clock_source", "given"))) if env.get("clock_ghz") \
            else clock_ghz()
    ghz, clock_source = clock
    per_cycle, why = fp32_per_cycle(isa, str(env.get("cpu_model", "")), identity_of(env))
    cores = min(int(threads), int(env.get("usable_cores") or threads))
    fp32 = cores * ghz * per_cycle
    path = int8_target_of(isa)
    factor = INT8_PER_FP32.get(path)
    int8 = cores * ghz * AMX_INT8_PER_CYCLE if factor is None else fp32 * factor
    basis = (f"{cores} core(s) x {ghz:.2f} GHz ({clock_source}) x {per_cycle:g} fp32 ops/cycle [{why}]; "
             f"int8 {'AMX 2048 ops/cycle' if factor is None else f'x{factor:.2f} ({path})'}")
    return Peak(fp32_gops=fp32, int8_gops=int8, basis=basis)


def roofline(ops: dict[str, float] | None, latency_ms: float | None, peak: Peak | None) -> dict[str, Any] | None:
    """Achieved GOP/s and the fraction of peak for one latency (None when something is unknown)."""
    if not ops or not ops.get("ops") or not latency_ms or peak is None:
        return None
    bound = peak.bound_ms(ops)
    return {"gops": ops["ops"] / latency_ms / 1e6, "float_ops": ops["float_ops"], "int8_ops": ops["int8_ops"],
            "peak_fp32_gops": peak.fp32_gops, "peak_int8_gops": peak.int8_gops, "bound_ms": bound,
            "fraction_of_peak": bound / latency_ms, "beyond_peak": bound > latency_ms, "peak_basis": peak.basis}


# The thesis's machines (Table 4.2), described as generously as their public specifications allow, so a
# "beyond peak" verdict cannot come from a too-low estimate: Google Cloud C3D (AMD EPYC Genoa 9B14, AVX-512
# VNNI, max boost 3.7 GHz); the "8/15/30-core" configurations are counted as full cores (on GCE they are
# vCPUs, i.e. hyperthreads, so half as many physical cores is the likelier reading). Jetson AGX Orin 64GB:
# NVIDIA's headline 275 TOPS (sparse int8, GPU + DLA), used as the bound for every precision.
GENOA = {"cpu_vendor": "AuthenticAMD", "cpu_family": 0x19, "cpu_model_number": 0x11}  # EPYC 9004 (Zen 4)
THESIS_MACHINES = {
    "8-core": {"isa": ["avx2", "fma", "avx512f", "avx512bw", "avx512_vnni"], "cpu_model": "AMD EPYC Genoa", **GENOA,
               "usable_cores": 8, "clock_ghz": 3.7, "clock_source": "max boost"},
    "15-core": {"isa": ["avx2", "fma", "avx512f", "avx512bw", "avx512_vnni"], "cpu_model": "AMD EPYC Genoa", **GENOA,
                "usable_cores": 15, "clock_ghz": 3.7, "clock_source": "max boost"},
    "30-core": {"isa": ["avx2", "fma", "avx512f", "avx512bw", "avx512_vnni"], "cpu_model": "AMD EPYC Genoa", **GENOA,
                "usable_cores": 30, "clock_ghz": 3.7, "clock_source": "max boost"},
}
ORIN_PEAK = Peak(fp32_gops=275_000.0, int8_gops=275_000.0,
                 basis="Jetson AGX Orin 64GB: NVIDIA's 275 TOPS (sparse int8, GPU + DLA) as a bound for every precision")


def thesis_peak(configuration: str) -> Peak:
    """The generous peak of a thesis configuration ("8-core", "15-core", "30-core", "GPU")."""
    if configuration == "GPU":
        return ORIN_PEAK
    env = THESIS_MACHINES[configuration]
    return cpu_peak(env, env["usable_cores"])
