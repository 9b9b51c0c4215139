"""What a network's convolutions cost on a deployment, in milliseconds: a table of conv shapes measured once per
deployment (runtime, precision, CPU kind, threads) and cached, so that channel pruning can spend its cuts where the
runtime spends its time rather than where the multiply-accumulates are (issue 34: on yolo11n-pose, 80 % of the conv
MACs made the int8 model only about 1.16x faster).

A shape's time is one Ultralytics Conv block (convolution, bias, SiLU) alone in OpenVINO, its input, weights and
output quantized as NNCF quantizes them (FakeQuantize, int8 kernels) or in float. Alone, a conv also pays for
converting its input and output, which inside a network it does not (on an AMX Xeon the stem conv takes 4.5 ms alone
and 1.0 ms in the deployed int8 model), so a table is best anchored to a deployed network (`LatencyTable.anchor_`
with `openvino_profile_ms`: OpenVINO's own per-layer counters): each conv is then priced at its deployed time times
the table's ratio of its new shape to its old. What the convs leave out (concats, attention, the decode) is the same
for every pruning of one model; `benchmarks/latency_allocation.py` sets the estimate beside the measured model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from posebench.compress.channel_groups import visit_convs
from posebench.latency import LatencyProtocol, measure



@dataclass(frozen=True)
class ConvShape:
    """One convolution as the runtime sees it: channels, kernel, stride, groups, input size, and its precision."""

    cin: int
    cout: int
    kernel: int
    stride: int
    groups: int
    height: int
    width: int
    precision: str = "int8"

    @property
    def key(self) -> str:
        return (f"{self.precision}:{self.cin}x{self.cout}k{self.kernel}s{self.stride}g{self.groups}"
                f"@{self.height}x{self.width}")


def conv_shapes(net: nn.Module, imgsz: tuple[int, int], float_convs: Iterable[str] = ()) -> dict[str, ConvShape]:
    """Module name -> shape of every convolution of `net` for one image at `imgsz` (eval-mode forward); convs whose
    module name matches a `float_convs` regex are priced in float (the deployment keeps them out of int8)."""
    patterns = [re.compile(p) for p in float_convs]
    shapes: dict[str, ConvShape] = {}

    def record(name: str, conv: nn.Conv2d, source: torch.Tensor, _output: torch.Tensor) -> None:
        precision = "float" if any(p.search(name) for p in patterns) else "int8"
        shapes[name] = ConvShape(conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.stride[0],
                                 conv.groups, int(source.shape[2]), int(source.shape[3]), precision)

    visit_convs(net, imgsz, record)
    return shapes


def _openvino_conv(shape: ConvShape) -> Any:
    """One Conv block (conv, bias, SiLU) as an OpenVINO model; int8: FakeQuantize on input, weights and output,
    the pattern OpenVINO's low-precision transformations run on int8 kernels."""
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    x = ops.parameter([1, shape.cin, shape.height, shape.width], ov.Type.f32, name="x")
    kernel = (shape.cout, shape.cin // shape.groups, shape.kernel, shape.kernel)
    weights = rng.standard_normal(kernel).astype(np.float32)

    def fq(node: Any, low: float, high: float, levels: int = 256) -> Any:
        lo, hi = ops.constant(np.float32(low)), ops.constant(np.float32(high))
        return ops.fake_quantize(node, lo, hi, lo, hi, levels)

    source = fq(x, 0.0, 4.0) if shape.precision == "int8" else x
    w = fq(ops.constant(weights), -2.0, 2.0, 255) if shape.precision == "int8" else ops.constant(weights)
    pad = [shape.kernel // 2] * 2
    if shape.groups > 1:
        w = ops.reshape(w, ops.constant(np.array([shape.groups, shape.cout // shape.groups, shape.cin // shape.groups,
                                                  shape.kernel, shape.kernel], dtype=np.int64)), False)
        y = ops.group_convolution(source, w, [shape.stride] * 2, pad, pad, [1, 1])
    else:
        y = ops.convolution(source, w, [shape.stride] * 2, pad, pad, [1, 1])
    y = ops.add(y, ops.constant(rng.standard_normal((1, shape.cout, 1, 1)).astype(np.float32)))
    y = ops.swish(y)
    if shape.precision == "int8":
        y = fq(y, -0.5, 4.0)
    return ov.Model([y], [x], "conv")


def openvino_conv_ms(shape: ConvShape, threads: int = 2, seconds: float = 0.05, min_runs: int = 20) -> float:
    """Median milliseconds of one inference of `shape`'s Conv block alone on OpenVINO's CPU plugin (latency hint,
    `threads` threads, float parts in the precision the CPU picks, as a deployed model's). Alone, a conv also pays
    for converting its input and output (memory-bound layers most): `LatencyTable.anchor_` scales these times to a
    deployed network's own."""
    import openvino as ov

    compiled = ov.Core().compile_model(_openvino_conv(shape), "CPU", {"PERFORMANCE_HINT": "LATENCY",
                                                                     "INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()
    x = np.random.default_rng(1).random((1, shape.cin, shape.height, shape.width), dtype=np.float32) * 4.0
    protocol = LatencyProtocol(iters=min_runs, min_seconds=seconds, warmup_iters=3, warmup_seconds=0.0)
    return measure(lambda: request.infer({0: x}), protocol).p50_ms


_CONV_NODE = re.compile(r"^__module\.(.+?)/aten::_?convolution|^/(model(?:/[^/]+)+?)/Conv(?:_\d+)?$")


def openvino_profile_ms(ir: Path, threads: int = 2, runs: int = 30) -> dict[str, float]:
    """Conv module name -> mean milliseconds of its convolution inside the deployed model `ir` (OpenVINO's own
    per-layer counters over `runs` inferences of a random image, latency hint, `threads` threads)."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(ir), "CPU", {"PERF_COUNT": "YES", "PERFORMANCE_HINT": "LATENCY",
                                                        "INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()
    shape = list(compiled.inputs[0].shape)
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    for _ in range(5):
        request.infer({0: x})
    totals: dict[str, float] = {}
    for _ in range(runs):
        request.infer({0: x})
        for node in request.profiling_info:
            found = _CONV_NODE.match(node.node_name)
            if found and node.node_type in ("Convolution", "GroupConvolution"):
                name = (found.group(1) or found.group(2).replace("/", "."))
                totals[name] = totals.get(name, 0.0) + node.real_time.total_seconds() * 1000.0 / runs
    return totals


class LatencyTable:
    """Milliseconds per conv shape on one deployment; shapes not in the table are measured by `measure` and added
    (saved to `path` when one is given). `identity` says what the times hold for (runtime, CPU kind, threads)."""

    def __init__(self, measure: Callable[[ConvShape], float] | None = None, path: Path | None = None,
                 identity: dict[str, Any] | None = None, times: dict[str, float] | None = None) -> None:
        self.measure, self.path, self.identity = measure, path, dict(identity or {})
        self.times: dict[str, float] = dict(times or {})
        self.measured = 0  # shapes measured by this instance (the rest came from the cache)
        self.anchors: dict[str, tuple[ConvShape, float]] = {}  # conv name -> (its shape, its ms in the deployed net)
        if path is not None and path.is_file():
            stored = json.loads(path.read_text())
            if stored.get("identity", self.identity) != self.identity and self.identity:
                raise ValueError(f"{path} holds times for {stored.get('identity')}, not {self.identity}")
            self.times = {**stored.get("times", {}), **self.times}

    def ms(self, shape: ConvShape) -> float:
        """The time of one conv of this shape (measured now if the table lacks it)."""
        if shape.key not in self.times:
            if self.measure is None:
                raise KeyError(f"no time for conv shape {shape.key} in the latency table and nothing to measure it")
            self.times[shape.key] = float(self.measure(shape))
            self.measured += 1
        return self.times[shape.key]

    def anchor_(self, net: nn.Module, imgsz: tuple[int, int], deployed_ms: dict[str, float],
                float_convs: Iterable[str] = ()) -> None:
        """Scale to a deployed network: each conv of `net` named in `deployed_ms` (`openvino_profile_ms` of its
        deployment) is priced at its deployed time times the table's ratio of its new shape to its shape now."""
        shapes = conv_shapes(net, imgsz, float_convs)
        self.anchors = {name: (shapes[name], ms) for name, ms in deployed_ms.items() if name in shapes}

    def conv_ms(self, name: str, shape: ConvShape) -> float:
        """The time of conv `name` at `shape`: its deployed time scaled by the table when anchored, else the table's."""
        if name in self.anchors:
            anchor, deployed = self.anchors[name]
            return deployed * self.ms(shape) / max(self.ms(anchor), 1e-9)
        return self.ms(shape)

    def network_ms(self, net: nn.Module, imgsz: tuple[int, int], float_convs: Iterable[str] = ()) -> float:
        """The estimated conv time of `net` at `imgsz`: the sum of its convs' times."""
        return sum(self.conv_ms(name, shape) for name, shape in conv_shapes(net, imgsz, float_convs).items())

    def save(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps({"identity": self.identity, "times": self.times}, indent=1,
                                            sort_keys=True))


def default_table_path(identity: dict[str, Any]) -> Path:
    """Where this deployment's table is cached: ~/.cache/posebench/latency/<runtime>-<cpu kind>-<threads>t.json."""
    name = f"{identity['runtime']}-{identity['cpu_kind']}-{identity['threads']}t.json"
    return Path.home() / ".cache" / "posebench" / "latency" / name


def openvino_table(threads: int = 2, path: Path | None = None) -> LatencyTable:
    """The OpenVINO CPU table for this machine's CPU kind (the oneDNN ISA cap included), cached on disk."""
    import openvino as ov

    from posebench.machine.cpu import capped_flags, cpuinfo, onednn_isa_cap
    from posebench.machine.isa import cpu_kind

    native, cap = cpuinfo()[1], onednn_isa_cap()
    kind = cpu_kind(capped_flags(native, cap)) + (f"-capped-on-{cpu_kind(native)}" if cap else "")
    identity = {"runtime": "openvino", "openvino": ov.__version__, "cpu_kind": kind, "threads": threads}
    return LatencyTable(lambda shape: openvino_conv_ms(shape, threads), path or default_table_path(identity),
                        identity)


def table_from_json(path: Path) -> LatencyTable:
    """A stored table that measures nothing (e.g. one measured on another machine)."""
    stored = json.loads(path.read_text())
    return LatencyTable(None, None, stored.get("identity"), stored["times"])

