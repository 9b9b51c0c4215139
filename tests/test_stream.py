"""`posebench stream`: real-time pacing counts dropped frames honestly, the annotated video shows skeletons, bad
input ends in one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import run_cli

from posebench.errors import InvalidInputError


def _video(path: Path, frames: int, fps: float = 25.0, size: tuple[int, int] = (640, 360)) -> Path:
    """A real MJPG video of the bus image (people in it), slightly shifted frame to frame."""
    from ultralytics.utils import ASSETS

    bus = cv2.resize(cv2.imread(str(Path(ASSETS) / "bus.jpg")), (270, 360))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(frames):
        frame = np.full((size[1], size[0], 3), 90, np.uint8)
        x = 100 + (4 * i) % 240
        frame[:, x:x + 270] = bus
        writer.write(frame)
    writer.release()
    return path


def _corrupt_frame(video: Path, index: int, out: Path) -> Path:
    """The same video with the JPEG data of frame `index` wiped."""
    data = bytearray(video.read_bytes())
    starts = [i for i in range(len(data) - 2) if data[i] == 0xFF and data[i + 1] == 0xD8 and data[i + 2] == 0xFF]
    data[starts[index]:starts[index] + 600] = bytes(600)
    out.write_bytes(bytes(data))
    return out


def test_matched_input_shape_follows_the_footage():
    from posebench.frame_source import matched_imgsz

    assert matched_imgsz((720, 1280)) == (384, 640)
    assert matched_imgsz((1080, 1920)) == (384, 640)
    assert matched_imgsz((480, 640)) == (480, 640)
    assert matched_imgsz((1280, 720)) == (640, 384)
    assert matched_imgsz((640, 640)) == (640, 640)


def test_realtime_pacing_counts_every_dropped_frame(tmp_path, artifacts):
    """A deliberately slow runtime (null, 100 ms a frame) at 25 fps: most frames arrive while one is in flight.
    Dropping: every frame is either processed or counted as dropped. Queueing: none dropped, all processed, and
    the wait shows in the end-to-end latency."""
    from posebench.pipeline import open_pipeline
    from posebench.frame_source import FrameSource
    from posebench.stream import run_stream

    video = _video(tmp_path / "v.avi", 30)
    onnx = artifacts.get("onnx", (160, 224))
    pipeline = open_pipeline("null", onnx, threads=1, options={"delay_ms": 100})
    source = FrameSource(video)
    dropped = run_stream(pipeline, source, pace="realtime", on_late="drop")
    assert dropped.frames_read == 30 and dropped.processed + dropped.dropped == 30
    assert dropped.dropped >= 15 and dropped.processed >= 8  # 1.2 s of video, 0.1 s a frame
    assert dropped.sustained_fps < 12
    queued = run_stream(pipeline, FrameSource(video, max_frames=12), pace="realtime", on_late="queue")
    assert queued.dropped == 0 and queued.processed == queued.frames_read == 12
    summary = queued.to_dict()
    # queued frames wait: the last ones are ~12 x (100 - 40) ms late, far beyond the 100 ms a frame takes
    assert summary["e2e"]["p90_ms"] > 300 > summary["stages"]["infer"]["p50_ms"]
    fast = run_stream(open_pipeline("null", onnx, threads=1), FrameSource(video), pace="max")
    assert fast.processed == 30 and fast.dropped == 0


def test_frames_in_flight_multiply_throughput_and_keep_the_order(tmp_path, artifacts):
    """Two frames in flight on a runtime that takes 60 ms a frame (and no CPU): close to twice the frames per
    second; every frame is processed and the results come out in the source's order."""
    from posebench.pipeline import open_pipeline
    from posebench.frame_source import FrameSource
    from posebench.stream import run_stream

    video = _video(tmp_path / "v.avi", 24)
    pipeline = open_pipeline("null", artifacts.get("onnx", (160, 224)), threads=1, options={"delay_ms": 60})
    one = run_stream(pipeline, FrameSource(video), pace="max")
    two = run_stream(pipeline, FrameSource(video), pace="max", inflight=2, save_poses=tmp_path / "poses.jsonl")
    assert one.processed == two.processed == 24 and two.inflight == 2 and two.to_dict()["inflight"] == 2
    assert two.sustained_fps > 1.6 * one.sustained_fps, (one.sustained_fps, two.sustained_fps)
    frames = [json.loads(line)["frame"] for line in (tmp_path / "poses.jsonl").read_text().splitlines()]
    assert frames == list(range(24))
    paced = run_stream(pipeline, FrameSource(video), pace="realtime", on_late="drop", inflight=3)
    assert paced.processed + paced.dropped == 24 and paced.dropped <= 3  # 3 x 60 ms in flight keeps up with 25 fps
    with pytest.raises(InvalidInputError, match="inflight must be >= 1"):
        run_stream(pipeline, FrameSource(video), pace="max", inflight=0)


@pytest.mark.slow
def test_stream_cli_writes_skeletons_and_poses_and_skips_a_corrupt_frame(tmp_path, cache_dir):
    video = _corrupt_frame(_video(tmp_path / "clean.avi", 12), 5, tmp_path / "broken.avi")
    out = tmp_path / "out"
    proc = run_cli("stream", str(video), "--runtime", "openvino", "--threads", "2", "--pace", "max", "--imgsz",
                   "352,640", "--save-video", str(tmp_path / "annotated.avi"), "--save-poses",
                   str(tmp_path / "poses.jsonl"), "--cache-dir", str(cache_dir), "--out", str(out), "--json",
                   str(tmp_path / "record.json"))
    assert proc.returncode == 0, proc.stderr
    assert "11 of 11 frames processed" in proc.stdout and "1 unreadable frame(s) skipped" in proc.stdout
    record = json.loads((tmp_path / "record.json").read_text())[0]
    s = record["stream"]
    assert record["kind"] == "stream" and record["trial"]["mode"] == "stream"
    first_id = record["trial_id"]  # a trial's id, readable: what ran, on which footage
    assert first_id.endswith("|stream|openvino|2|352x640|broken.avi"), first_id
    assert s["corrupt"] == 1 and s["corrupt_frames"] == ["frame 5: could not be decoded"]
    assert s["processed"] == 11 and s["e2e"]["p50_ms"] > 0 and set(s["stages"]) == {"pre", "infer", "post"}
    lines = [json.loads(line) for line in (tmp_path / "poses.jsonl").read_text().splitlines()]
    assert [line["frame"] for line in lines] == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11]
    assert all(line["poses"] and len(line["poses"][0]["keypoints"]) == 17 for line in lines)
    capture = cv2.VideoCapture(str(tmp_path / "annotated.avi"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 11
    ok, annotated = capture.read()
    assert ok
    original = cv2.VideoCapture(str(video)).read()[1]
    # skeleton lines are drawn in yellow (BGR 0, 255, 255): many such pixels appear, few exist in the source
    yellow = lambda img: int(((img[..., 0] < 80) & (img[..., 1] > 200) & (img[..., 2] > 200)).sum())
    assert yellow(annotated) > yellow(original) + 200
    # two frames in flight (two OpenVINO streams): the same poses, in the same order
    proc = run_cli("stream", str(video), "--runtime", "openvino", "--threads", "2", "--pace", "max", "--imgsz",
                   "352,640", "--inflight", "2", "--save-poses", str(tmp_path / "poses2.jsonl"), "--cache-dir",
                   str(cache_dir), "--out", str(out), "--json", str(tmp_path / "record2.json"))
    assert proc.returncode == 0, proc.stderr
    assert "(2 frames in flight)" in proc.stdout
    record = json.loads((tmp_path / "record2.json").read_text())[0]
    assert record["stream"]["inflight"] == 2 and record["trial"]["options"] == {"streams": 2}
    assert record["trial_id"] == first_id.replace("|openvino|", "|openvino[streams=2]|")  # another trial
    twin = [json.loads(line) for line in (tmp_path / "poses2.jsonl").read_text().splitlines()]
    assert [line["frame"] for line in twin] == [line["frame"] for line in lines]
    for a, b in zip(lines, twin):
        assert len(a["poses"]) == len(b["poses"])
        for pa, pb in zip(a["poses"], b["poses"]):
            assert np.abs(np.asarray(pa["keypoints"])[:, :2] - np.asarray(pb["keypoints"])[:, :2]).max() < 1.0


def test_a_runtime_that_runs_one_frame_at_a_time_refuses_more_in_flight(tmp_path):
    from ultralytics.utils import ASSETS

    proc = run_cli("stream", str(Path(ASSETS) / "bus.jpg"), "--runtime", "torch", "--imgsz", "64", "--inflight", "2",
                   "--out", str(tmp_path / "out"))
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "runs one frame at a time" in errors[0], proc.stderr


@pytest.mark.parametrize("source, message", [
    ("missing.mp4", "missing.mp4 does not exist"),
    ("not-a-video.avi", "OpenCV cannot open this video"),
    ("7", "camera 7 does not open"),
])
def test_stream_bad_source_is_one_clear_line(tmp_path, source, message):
    if source == "not-a-video.avi":
        (tmp_path / source).write_text("this is not a video")
    target = source if source.isdigit() else str(tmp_path / source)
    proc = run_cli("stream", target, "--runtime", "null", "--out", str(tmp_path / "out"))
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], proc.stderr


@pytest.mark.slow
def test_ctrl_c_ends_a_stream_with_the_summary_so_far(tmp_path, artifacts, cache_dir):
    import signal
    import subprocess
    import sys
    import time

    from conftest import REPO

    artifacts.get("onnx", (160, 224))  # built before the clock starts
    video = _video(tmp_path / "long.avi", 400)  # 16 s at 25 fps, paced in real time
    proc = subprocess.Popen([sys.executable, "-m", "posebench", "stream", str(video), "--runtime", "null", "--imgsz",
                             "160,224", "--cache-dir", str(cache_dir), "--out", str(tmp_path / "out")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    time.sleep(9)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in out and "fps sustained" in out
    record = json.loads((tmp_path / "out" / "results.jsonl").read_text().splitlines()[-1])
    assert record["stream"]["interrupted"] and 0 < record["stream"]["frames_read"] < 400
