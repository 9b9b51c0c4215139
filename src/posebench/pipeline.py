"""Frame in, poses out: the deployed pipeline (letterbox, normalise, runtime, decode + NMS, back to frame pixels).

Three pre-processing paths give the same letterboxed pixels (`letterbox_plan` is their one geometry):
- "reference": the validator's own code (`letterbox` + `to_batch`), allocating per frame;
- "vectorised": one grey canvas per frame size, the frame resized straight into it, then numpy's float batch;
- "fused": the canvas goes to the runtime as uint8 NHWC BGR and the compiled model does colour order, layout and
  scaling (OpenVINO's PrePostProcessor, ONNX ops in front of the graph for ONNX Runtime).
"auto" takes "fused" where it measured a tie or better (OpenVINO), else "vectorised" (ONNX Runtime's unfused
graph ops measured 0.96-1.05x of numpy's path). Each call keeps its stage times (pre, infer, post)
so an end-to-end measurement says where the time goes.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from posebench.errors import InvalidInputError
from posebench.evaluate.postprocess import Detections, NMSConfig, decode
from posebench.evaluate.preprocess import Letterbox, Preprocessor
from posebench.latency import LatencyProtocol, LatencyStats, measure
from posebench.runtimes.base import Backend

PREPROCESS_PATHS = ("auto", "fused", "vectorised", "reference")
PREDICT_NMS = NMSConfig(conf=0.25, iou=0.7, max_det=300)  # Ultralytics' `predict` defaults: what a deployment keeps
STAGES = ("pre", "infer", "post")


def resolve_preprocess(path: str, backend_cls: type[Backend]) -> str:
    """'auto' -> 'fused' where the runtime fuses it faster (OpenVINO), else 'vectorised'; a path the runtime
    cannot take is refused."""
    if path not in PREPROCESS_PATHS:
        raise InvalidInputError(f"unknown pre-processing path '{path}': choose one of {', '.join(PREPROCESS_PATHS)}")
    fusable = "nhwc_u8_bgr" in backend_cls.input_layouts
    if path == "auto":
        return "fused" if fusable and backend_cls.fuse_by_default else "vectorised"
    if path == "fused" and not fusable:
        raise InvalidInputError(f"runtime '{backend_cls.name}' cannot fuse pre-processing into its model: use "
                                "--preprocess vectorised (or auto)")
    return path


def backend_input(preprocess: str) -> dict[str, Any]:
    """The backend option a pre-processing path needs."""
    return {"input": "nhwc_u8_bgr"} if preprocess == "fused" else {}


@dataclass
class Pipeline:
    """One deployed model as a frame -> detections function. `backend` must have been created with
    `backend_input(preprocess)` among its options."""

    backend: Backend
    imgsz: tuple[int, int]
    kpt_shape: tuple[int, int]
    preprocess: str = "vectorised"  # fused | vectorised | reference (resolved, not 'auto')
    nms: NMSConfig = field(default_factory=lambda: PREDICT_NMS)
    end2end: bool | None = None
    last_ns: tuple[int, int, int] = (0, 0, 0)  # pre, infer, post of the latest frame

    def __post_init__(self) -> None:
        if self.preprocess not in PREPROCESS_PATHS[1:]:
            raise InvalidInputError(f"pre-processing path must be one of {', '.join(PREPROCESS_PATHS[1:])}, got "
                                    f"'{self.preprocess}'")
        self._prepare = Preprocessor(self.imgsz, self.preprocess)
        if self.backend.input_layout != self._prepare.input_layout:
            raise InvalidInputError(f"the '{self.preprocess}' path needs a backend taking "
                                    f"{self._prepare.input_layout} input, this one takes {self.backend.input_layout}")

    def replica(self) -> Pipeline:
        """Another pipeline on the same loaded model (its own runtime request, canvas and stage times), for a
        second frame in flight on another thread."""
        return dataclasses.replace(self, backend=self.backend.replica())

    def prepare(self, frame: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """The runtime's input for one BGR frame, and how the frame was mapped into it."""
        return self._prepare(frame)

    def __call__(self, frame: np.ndarray) -> Detections:
        """Poses of one frame, in frame pixels; the stage times land in `last_ns`."""
        clock = time.perf_counter_ns
        t0 = clock()
        batch, lb = self.prepare(frame)
        t1 = clock()
        outputs = self.backend.infer(batch)
        t2 = clock()
        detections = decode(outputs[0], kpt_shape=self.kpt_shape, letterbox=lb, config=self.nms,
                            end2end=self.end2end)
        t3 = clock()
        self.last_ns = (t1 - t0, t2 - t1, t3 - t2)
        return detections

    def describe(self) -> dict[str, Any]:
        return {"preprocess": self.preprocess, "imgsz": list(self.imgsz), "conf": self.nms.conf, "iou": self.nms.iou,
                "max_det": self.nms.max_det, "decode": "end2end" if self.end2end else "nms"}


def open_pipeline(runtime: str, artifact: Path, *, threads: int, options: dict[str, Any] | None = None,
                  preprocess: str = "auto", nms: NMSConfig = PREDICT_NMS,
                  imgsz: tuple[int, int] | None = None) -> Pipeline:
    """Load `artifact` on `runtime` as a pipeline (its size and keypoint shape from the artifact's metadata)."""
    from posebench.export import read_metadata
    from posebench.runtimes import backend_class, create_backend

    meta = read_metadata(artifact) or {}
    if "kpt_shape" not in meta:
        raise InvalidInputError(f"{artifact}: no metadata with the keypoint shape; import it through posebench "
                                "(--model with --kpt-shape)")
    size = tuple(imgsz or meta.get("imgsz") or ())
    if len(size) != 2:
        raise InvalidInputError(f"{artifact}: its input size is unknown; give imgsz")
    path = resolve_preprocess(preprocess, backend_class(runtime))
    backend = create_backend(runtime, artifact, threads=threads, options={**(options or {}), **backend_input(path)})
    return Pipeline(backend, (int(size[0]), int(size[1])), tuple(meta["kpt_shape"]), path, nms, meta.get("end2end"))


class UltralyticsPipeline:
    """Ultralytics' own pipeline as the reference: `YOLO(artifact).predict(frame)`, timed around the whole call;
    its stages are what Ultralytics reports (`results[0].speed`). Threads: Ultralytics picks them itself (its
    OpenVINO backend takes every core it sees): run it in a process pinned to `threads` cores (the `bench`
    child does) to compare like with like."""

    preprocess = "ultralytics"

    def __init__(self, artifact: Path, *, meta: dict[str, Any], imgsz: tuple[int, int], threads: int,
                 nms: NMSConfig = PREDICT_NMS):
        import tempfile

        import torch

        from posebench.ultralytics_adapter import ultralytics_predict_model

        torch.set_num_threads(threads)
        self._tmp = tempfile.TemporaryDirectory(prefix="posebench-ultralytics-")
        self.model = ultralytics_predict_model(Path(artifact), meta, Path(self._tmp.name))
        self.imgsz, self.nms = imgsz, nms
        self.last_ns: tuple[int, int, int] = (0, 0, 0)

    def __call__(self, frame: np.ndarray) -> Any:
        if self.model.predictor is None:  # the first call loads Ultralytics' backend
            from posebench.ultralytics_adapter import openvino_as_the_capped_cpu

            with openvino_as_the_capped_cpu():
                return self._predict(frame)
        return self._predict(frame)

    def _predict(self, frame: np.ndarray) -> Any:
        result = self.model.predict(frame, imgsz=list(self.imgsz), conf=self.nms.conf, iou=self.nms.iou,
                                    max_det=self.nms.max_det, verbose=False)[0]
        self.last_ns = tuple(int(result.speed[k] * 1e6) for k in ("preprocess", "inference", "postprocess"))
        return result

    def describe(self) -> dict[str, Any]:
        from posebench.ultralytics_adapter import installed_version

        described = {"pipeline": "ultralytics", "ultralytics": installed_version(), "imgsz": list(self.imgsz),
                     "conf": self.nms.conf, "iou": self.nms.iou, "max_det": self.nms.max_det}
        # Ultralytics compiles an OpenVINO IR with no precision hint: on a CPU with bf16 (AVX512_BF16, AMX) its
        # float parts run in bf16, where posebench's openvino runs f32 unless asked. Record what it ran.
        compiled = getattr(getattr(getattr(getattr(self.model, "predictor", None), "model", None), "backend", None),
                           "ov_compiled_model", None)
        if compiled is not None:
            precision = compiled.get_property("INFERENCE_PRECISION_HINT")
            described["openvino_inference_precision"] = precision.get_type_name()
        return described

    def close(self) -> None:
        self._tmp.cleanup()


@dataclass(frozen=True)
class EndToEndStats:
    """An end-to-end measurement: the total per frame, and each stage."""

    total: LatencyStats
    stages: dict[str, dict[str, float]]  # stage -> mean_ms, p50_ms, p90_ms, p99_ms
    frames: int  # distinct frames cycled through

    def to_dict(self) -> dict[str, Any]:
        return {"latency": self.total.to_dict(), "stages": self.stages, "frames": self.frames}


def stage_summary(samples_ns: np.ndarray) -> dict[str, float]:
    ms = np.asarray(samples_ns, np.float64) / 1e6
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"mean_ms": float(ms.mean()), "p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99)}


def measure_e2e(pipeline: Pipeline | UltralyticsPipeline, frames: list[np.ndarray],
                protocol: LatencyProtocol) -> EndToEndStats:
    """Time the whole pipeline per frame under `protocol` (model mode's loop: the total is timed around each
    call), cycling through decoded `frames` (decoding is not timed: a camera or decoder hands the frame over);
    each timed frame's stage times are collected outside the timed region."""
    if not frames:
        raise InvalidInputError("no frame to time the pipeline on")
    cycle = itertools.cycle(frames)
    stages: list[tuple[int, int, int]] = []
    total = measure(lambda: pipeline(next(cycle)), protocol, after=lambda n: stages.append(pipeline.last_ns))
    per_stage = np.asarray(stages, np.int64)
    return EndToEndStats(total, {name: stage_summary(per_stage[:, i]) for i, name in enumerate(STAGES)},
                         min(len(frames), total.count))


def load_frames(source: Path, max_frames: int = 64) -> list[np.ndarray]:
    """Up to `max_frames` decoded frames of a video or an image folder, held in memory for timing."""
    from posebench.evaluate.validate import iter_frames

    frames = [frame for _, frame in iter_frames(Path(source), max_frames=max_frames)]
    if not frames:
        raise InvalidInputError(f"{source}: no frame could be read")
    return frames


def default_source() -> Path:
    """The images that ship with Ultralytics (bus.jpg, zidane.jpg): the e2e source when none is given."""
    from posebench.ultralytics_adapter import assets_dir

    return assets_dir()
