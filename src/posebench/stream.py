"""`posebench stream`: a video, an image folder or a camera through one deployment, as a live system runs it.

A reader thread decodes frames and hands them over; one inference thread per frame in flight (`inflight`, default
1) runs the pipeline, and the main thread writes results in order and reports progress. With real-time pacing a
frame becomes available at its time on the source's clock (frame i at i / fps), and one that arrives while the
pipeline is busy (every frame in flight) is either dropped (`on_late="drop"`: only the newest waiting frame is
kept, every frame it replaces is counted as dropped) or queued (`on_late="queue"`: every frame is processed,
latency grows). Without pacing ("max") frames are processed as fast as the pipeline goes, none dropped. A
frame's end-to-end latency runs from its arrival to its poses, waiting included. Unreadable frames are skipped
and counted; Ctrl-C ends the run with the summary so far.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np

from posebench.errors import InvalidInputError
from posebench.evaluate.postprocess import Detections
from posebench.frame_source import Frame, FrameSource
from posebench.pipeline import STAGES, Pipeline, stage_summary

# COCO's 17-keypoint skeleton (pairs of keypoint indices), as drawn by Ultralytics
COCO_SKELETON = ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9),
                 (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6))
@dataclass
class StreamStats:
    """What a stream run measured (ms unless named otherwise)."""

    source: str
    fps_source: float
    pace: str
    on_late: str
    frames_read: int = 0
    processed: int = 0
    dropped: int = 0
    corrupt: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0
    latency_ns: list[int] = field(default_factory=list)  # arrival -> poses, per processed frame
    stages_ns: list[tuple[int, int, int]] = field(default_factory=list)
    interrupted: bool = False
    detections: int = 0
    inflight: int = 1  # frames run at once

    @property
    def sustained_fps(self) -> float:
        return self.processed / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source, "fps_source": self.fps_source, "pace": self.pace, "on_late": self.on_late,
            "frames_read": self.frames_read, "processed": self.processed, "dropped": self.dropped,
            "corrupt": len(self.corrupt), "corrupt_frames": self.corrupt[:50], "wall_seconds": self.wall_seconds,
            "sustained_fps": self.sustained_fps, "interrupted": self.interrupted, "detections": self.detections,
            "inflight": self.inflight,
        }
        if self.latency_ns:
            out["e2e"] = stage_summary(np.asarray(self.latency_ns))
            stages = np.asarray(self.stages_ns)
            out["stages"] = {name: stage_summary(stages[:, i]) for i, name in enumerate(STAGES)}
        return out


class _Handover:
    """The reader's frames to the pipeline: a bounded queue (no drops) or a one-frame slot (newest wins). Each
    frame taken gets the next ticket: the order results are written in when several frames are in flight."""

    def __init__(self, drop: bool, capacity: int):
        self.drop, self.capacity = drop, capacity
        self.items: deque[Frame] = deque()
        self.cond = threading.Condition()
        self.closed = False
        self.dropped = 0
        self.taken = 0

    def put(self, frame: Frame) -> None:
        with self.cond:
            if self.drop:
                self.dropped += len(self.items)
                self.items.clear()
            else:
                while self.capacity and len(self.items) >= self.capacity and not self.closed:
                    self.cond.wait(0.1)
            self.items.append(frame)
            self.cond.notify_all()

    def get(self) -> tuple[int, Frame] | None:
        with self.cond:
            while not self.items and not self.closed:
                self.cond.wait(0.1)
            if not self.items:
                return None
            frame = self.items.popleft()
            ticket, self.taken = self.taken, self.taken + 1
            self.cond.notify_all()
            return ticket, frame

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


def draw_poses(image: np.ndarray, det: Detections, *, kpt_conf: float = 0.5) -> np.ndarray:
    """Boxes, keypoints and (for COCO's 17 keypoints) the skeleton, drawn on `image` in place."""
    for box, kpts in zip(det.boxes.astype(int), det.keypoints):
        cv2.rectangle(image, (box[0], box[1]), (box[2], box[3]), (255, 128, 0), 2)
        visible = kpts[:, 2] >= kpt_conf if kpts.shape[1] == 3 else np.ones(len(kpts), bool)
        points = kpts[:, :2].round().astype(int)
        if len(kpts) == 17:
            for a, b in COCO_SKELETON:
                if visible[a] and visible[b]:
                    cv2.line(image, tuple(points[a]), tuple(points[b]), (0, 255, 255), 2, cv2.LINE_AA)
        for (x, y), seen in zip(points, visible):
            if seen:
                cv2.circle(image, (int(x), int(y)), 4, (0, 0, 255), -1, cv2.LINE_AA)
    return image


def poses_json(index: int, det: Detections) -> str:
    """One JSON line: a frame's detections (boxes xyxy, scores, keypoints x, y[, score]) in frame pixels."""
    return json.dumps({"frame": index, "poses": [
        {"box": [round(float(v), 1) for v in box], "score": round(float(score), 4),
         "keypoints": [[round(float(v), 2) for v in kpt] for kpt in kpts]}
        for box, score, kpts in zip(det.boxes, det.scores, det.keypoints)]})


def run_stream(pipeline: Pipeline, source: FrameSource, *, pace: str = "realtime", on_late: str = "drop",
               inflight: int = 1, save_video: Path | None = None, save_poses: Path | None = None,
               on_progress: Callable[[StreamStats], None] | None = None, progress_every_s: float = 0.5) -> StreamStats:
    """Run `source` through `pipeline`; returns the summary (also after Ctrl-C, marked interrupted).

    `inflight` frames run at once, each on its own replica of the pipeline (same loaded model, its own request):
    on OpenVINO with as many streams, two frames in flight keep both cores busy through the serial parts of a
    small model (measured 1.1-1.4x the frames per second of one, at a higher latency per frame). Results are
    written in the order the frames were taken."""
    if pace not in ("realtime", "max"):
        raise InvalidInputError(f"--pace must be 'realtime' or 'max', got '{pace}'")
    if on_late not in ("drop", "queue"):
        raise InvalidInputError(f"--on-late must be 'drop' or 'queue', got '{on_late}'")
    if inflight < 1:
        raise InvalidInputError(f"--inflight must be >= 1, got {inflight}")
    realtime = pace == "realtime"
    handover = _Handover(drop=realtime and on_late == "drop", capacity=0 if realtime else 2 + 2 * inflight)
    stats = StreamStats(source.name, source.fps, pace, on_late if realtime else "-", inflight=inflight)
    errors: list[BaseException] = []
    pipelines = [pipeline] + [pipeline.replica() for _ in range(inflight - 1)]
    finished: queue.Queue[tuple[int, Frame, Detections, int, tuple[int, int, int]] | None] = queue.Queue()
    sink = _Sink(stats, source.fps, save_video, save_poses)
    threads = [threading.Thread(target=_read_frames, args=(source, handover, stats, errors, realtime),
                                name="posebench-reader", daemon=True)]
    threads += [threading.Thread(target=_infer_frames, args=(p, handover, finished, errors, realtime),
                                 name=f"posebench-infer-{i}", daemon=True) for i, p in enumerate(pipelines)]
    pending: dict[int, tuple[Frame, Detections, int, tuple[int, int, int]]] = {}
    start = time.perf_counter()
    last_report = start
    for thread in threads:
        thread.start()
    try:
        running = len(pipelines)
        while running:
            try:
                item = finished.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is None:
                running -= 1
                continue
            ticket, *result = item
            pending[ticket] = result  # type: ignore[assignment]
            while stats.processed in pending:  # tickets count the frames taken: write them in that order
                sink.record(*pending.pop(stats.processed))
            now = time.perf_counter()
            if on_progress and now - last_report >= progress_every_s:
                stats.dropped = handover.dropped
                stats.wall_seconds = now - start
                on_progress(stats)
                last_report = now
    except KeyboardInterrupt:
        stats.interrupted = True
    finally:
        handover.close()
        for thread in threads:
            thread.join(timeout=5)
        while True:  # frames that were in flight when the run ended
            try:
                item = finished.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                pending[item[0]] = item[1:]  # type: ignore[assignment]
        for ticket in sorted(pending):
            sink.record(*pending[ticket])
        stats.wall_seconds = time.perf_counter() - start
        stats.dropped = handover.dropped
        stats.corrupt = list(source.corrupt)
        sink.close()
    if errors and not stats.interrupted:
        raise errors[0]
    return stats


def _read_frames(source: FrameSource, handover: _Handover, stats: StreamStats, errors: list[BaseException],
                 realtime: bool) -> None:
    """The reader thread: frames into the handover (a file at its frame rate when real time)."""
    clock = time.perf_counter_ns
    start = clock()
    period = 1e9 / source.fps
    try:
        for n, (index, image) in enumerate(source.frames()):
            if realtime and not source.live:  # a file plays at its frame rate: frame n is due at n / fps
                due = start + int(n * period)
                wait = due - clock()
                if wait > 0:
                    time.sleep(wait / 1e9)
            if handover.closed:
                return
            stats.frames_read += 1
            handover.put(Frame(index, image, clock()))
    except BaseException as exc:  # noqa: BLE001 - surfaced on the main thread, re-raised there
        errors.append(exc)
    finally:
        handover.close()


def _infer_frames(pipe: Pipeline, handover: _Handover, finished: queue.Queue, errors: list[BaseException],
                  realtime: bool) -> None:
    """An inference thread: frames from the handover through `pipe`, results (with their ticket) to `finished`."""
    clock = time.perf_counter_ns
    try:
        while (taken := handover.get()) is not None:
            ticket, frame = taken
            # real time: from the frame's arrival, waiting included; as fast as possible: from when it is taken
            arrival = frame.arrival_ns if realtime else clock()
            det = pipe(frame.image)
            finished.put((ticket, frame, det, clock() - arrival, pipe.last_ns))
    except BaseException as exc:  # noqa: BLE001 - surfaced on the main thread, re-raised there
        errors.append(exc)
        handover.close()
    finally:
        finished.put(None)


class _Sink:
    """Where each finished frame goes, in order: the statistics, the poses file, the annotated video."""

    def __init__(self, stats: StreamStats, fps: float, save_video: Path | None, save_poses: Path | None) -> None:
        self.stats, self.fps, self.save_video = stats, fps, save_video
        self.writer: cv2.VideoWriter | None = None
        self.poses_file: TextIO | None = save_poses.open("w") if save_poses else None

    def record(self, frame: Frame, det: Detections, latency_ns: int, stages_ns: tuple[int, int, int]) -> None:
        self.stats.latency_ns.append(latency_ns)
        self.stats.stages_ns.append(stages_ns)
        self.stats.processed += 1
        self.stats.detections += len(det)
        if self.poses_file:
            self.poses_file.write(poses_json(frame.index, det) + "\n")
        if self.save_video:
            if self.writer is None:
                self.writer = _video_writer(self.save_video, frame.image.shape, self.fps)
            self.writer.write(draw_poses(frame.image.copy(), det))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
        if self.poses_file:
            self.poses_file.close()


def _video_writer(path: Path, shape: tuple[int, ...], fps: float) -> cv2.VideoWriter:
    path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if path.suffix.lower() in (".mp4", ".m4v", ".mov") else "MJPG"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, (shape[1], shape[0]))
    if not writer.isOpened():
        raise InvalidInputError(f"{path}: OpenCV cannot write a video here (try a .avi or .mp4 name)")
    return writer
