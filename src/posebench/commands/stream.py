"""`posebench stream`: its arguments and what it runs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from posebench.commands.args import add_model_args, add_output_args, model_source, non_negative_float, runtime_options
from posebench.errors import InvalidInputError
from posebench.latency import DEFAULT_THREADS


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add `stream` and its flags to the subcommands."""
    stream = sub.add_parser("stream", help="a video, image folder or camera through one deployment, in real time",
                            description="Run SOURCE through one runtime at the source's frame rate (real-time pacing: "
                                        "late frames dropped or queued) or as fast as possible; prints sustained fps, "
                                        "dropped frames, end-to-end p50/p90/p99 and the time per stage.")
    stream.add_argument("source", metavar="SOURCE", help="video file, image folder, or camera index (0, 1, ...)")
    add_model_args(stream, runtime_default="openvino", threads_default=str(DEFAULT_THREADS),
                   threads_help=f"threads of the runtime (default: {DEFAULT_THREADS})")
    stream.add_argument("--pace", default="realtime", choices=["realtime", "max"],
                        help="realtime: frames arrive at the source's rate (default); max: as fast as possible")
    stream.add_argument("--on-late", default="drop", choices=["drop", "queue"],
                        help="a frame arriving while the previous one is in flight: drop it, keeping only the newest "
                             "(default), or queue it")
    stream.add_argument("--inflight", type=int, default=1, metavar="N",
                        help="frames run at once (default 1: lowest latency per frame); 2 keeps both cores of a small "
                             "machine busy for more frames per second (openvino: as many streams; onnxruntime)")
    stream.add_argument("--fps", type=non_negative_float, default=None,
                        help="source frame rate for real-time pacing (default: the video's own, else 25)")
    stream.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (0 = all)")
    stream.add_argument("--preprocess", default="auto", choices=["auto", "fused", "vectorised", "reference"],
                        help="pre-processing path (default: fused into the model where the runtime can)")
    stream.add_argument("--conf", type=float, default=0.25, help="confidence threshold (default: 0.25, as predict)")
    stream.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold (default: 0.7)")
    stream.add_argument("--save-video", type=Path, default=None, metavar="PATH",
                        help="write the frames with skeletons drawn (.avi or .mp4)")
    stream.add_argument("--save-poses", type=Path, default=None, metavar="PATH",
                        help="write the poses of every processed frame as JSON lines")
    add_output_args(stream)


def run(args: argparse.Namespace) -> int:
    """Run `posebench stream`; returns the exit status."""
    import numpy as np
    from rich.console import Console

    from posebench.bench import parse_threads
    from posebench.evaluate.postprocess import NMSConfig
    from posebench.export import DEFAULT_CACHE, ArtifactStore, read_metadata
    from posebench.models import default_variant
    from posebench.pipeline import open_pipeline, resolve_preprocess
    from posebench.results import ResultStore, write_json
    from posebench.runtimes import backend_class, parse_runtimes
    from posebench.runtimes.base import parse_runtime_spec
    from posebench.frame_source import FrameSource
    from posebench.stream import run_stream
    from posebench.what_ran import identity

    runtimes, threads = parse_runtimes(args.runtime), parse_threads(args.threads)
    if len(runtimes) != 1 or len(threads) != 1:
        raise InvalidInputError("stream runs one deployment: give one --runtime and one --threads value")
    if args.max_frames < 0:
        raise InvalidInputError(f"--max-frames must be >= 0, got {args.max_frames}")
    if args.inflight < 1:
        raise InvalidInputError(f"--inflight must be >= 1, got {args.inflight}")
    runtime, own = parse_runtime_spec(runtimes[0])
    options = {**runtime_options(args).get(runtime, {}), **own}
    cls = backend_class(runtime)
    if args.inflight > 1 and "streams" in cls.identity_options:  # one runtime stream per frame in flight
        options.setdefault("streams", args.inflight)
    cls.check_installed()
    model = model_source(args)
    artifacts = ArtifactStore(model, args.cache_dir or DEFAULT_CACHE)
    artifacts.describe()
    frames = FrameSource(args.source, fps=args.fps or None, max_frames=args.max_frames)
    console = Console(stderr=True)
    try:
        imgsz = _stream_imgsz(args.imgsz, artifacts.fixed_imgsz(), frames, console)
        artifact = artifacts.get(cls.artifact_format, imgsz, accept=cls.accepts, prefer=cls.prefers)
        meta = read_metadata(artifact) or {}
        pipeline = open_pipeline(runtime, artifact, threads=threads[0], options=options,
                                 preprocess=args.preprocess, nms=NMSConfig(conf=args.conf, iou=args.iou),
                                 imgsz=imgsz)
        paced = f"paced at {frames.fps:g} fps, late frames {'dropped' if args.on_late == 'drop' else 'queued'}" \
            if args.pace == "realtime" else "as fast as possible"
        console.print(f"streaming {frames.name} through {runtime} ({meta.get('precision', 'fp32')}, {imgsz[0]}x"
                      f"{imgsz[1]}, {threads[0]} threads, {pipeline.preprocess} pre-processing"
                      + (f", {args.inflight} frames in flight" if args.inflight > 1 else "") + f"), {paced}; Ctrl-C "
                      "ends it with the summary")

        def progress(stats) -> None:  # noqa: ANN001 - StreamStats
            lat = np.percentile(np.asarray(stats.latency_ns[-200:]) / 1e6, 50) if stats.latency_ns else 0.0
            console.print(f"  {stats.processed} frames, {stats.sustained_fps:.1f} fps, {stats.dropped} dropped, "
                          f"e2e p50 {lat:.1f} ms", end="\r", highlight=False)

        with pipeline.backend:
            stats = run_stream(pipeline, frames, pace=args.pace, on_late=args.on_late, inflight=args.inflight,
                               save_video=args.save_video,
                               save_poses=args.save_poses, on_progress=progress if console.is_terminal else None)
    finally:
        frames.close()
    summary = stats.to_dict()
    ran = identity(model, variant=args.variant or default_variant(model), runtime=runtime, options=options,
                   threads=threads[0], imgsz=imgsz, meta=meta, mode="stream",
                   pipeline={"preprocess": resolve_preprocess(args.preprocess, cls), "source": frames.name,
                             **({"inflight": args.inflight} if args.inflight > 1 else {})})
    record = _stream_record(ran, frames.name, {"path": str(artifact), "form": meta.get("form")},
                            {"stream": summary, "pipeline": pipeline.describe()})
    store = ResultStore(args.out / "results.jsonl")
    store.append(record)
    if args.json:
        write_json(args.json, [record])
    print(stream_summary(summary))
    extras = [f"annotated video {args.save_video}" if args.save_video else "",
              f"poses {args.save_poses}" if args.save_poses else ""]
    print(f"record in {store.path}" + "".join(f"; {e}" for e in extras if e))
    return 130 if stats.interrupted else 0


def _stream_record(ran: Any, source: str, artifact: dict[str, Any], extra: dict[str, Any]) -> Any:
    """The record of one stream: its trial (what ran, on which footage) and what it measured."""
    from posebench.machine.environment import fingerprint
    from posebench.record import Record
    from posebench.trial import Trial

    asked = Trial("stream", model=ran.model, variant=ran.variant, runtime=ran.label, threads=ran.threads,
                  imgsz=ran.imgsz, frames=Path(source))
    return Record("stream", asked.id, ran, environment=fingerprint(), artifact=artifact, extra=extra)


def _stream_imgsz(asked: str | None, fixed: Any, frames: Any, console: Any) -> tuple[int, int]:
    """The input size: as asked, the model's own (noting a size that would match the footage's aspect better), or
    the footage's aspect at the default size."""
    from posebench.export import parse_imgsz
    from posebench.frame_source import matched_imgsz

    if asked is not None:
        return parse_imgsz(asked)
    if not fixed:
        return matched_imgsz(frames.first_frame().shape[:2])
    imgsz = parse_imgsz(fixed)
    matched = matched_imgsz(frames.first_frame().shape[:2], max(imgsz))
    if matched != imgsz:
        console.print(f"note: this model is built for {imgsz[0]}x{imgsz[1]}; {matched[0]}x{matched[1]} "
                      "matches the footage's aspect and does less work (build the model at that size)")
    return imgsz


def stream_summary(s: dict) -> str:
    """The end-of-stream lines a person reads."""
    lines = [f"{s['source']}: {s['processed']} of {s['frames_read']} frames processed in {s['wall_seconds']:.1f} s: "
             f"{s['sustained_fps']:.1f} fps sustained"
             + (f" ({s['inflight']} frames in flight)" if s.get("inflight", 1) > 1 else "")
             + (f" (source {s['fps_source']:g} fps, {s['dropped']} dropped)" if s["pace"] == "realtime" else "")
             + (f"; {s['corrupt']} unreadable frame(s) skipped" if s["corrupt"] else "")
             + ("; interrupted" if s["interrupted"] else "")]
    if "e2e" in s:
        e, st = s["e2e"], s["stages"]
        lines.append(f"end to end (arrival -> poses): p50 {e['p50_ms']:.1f} ms, p90 {e['p90_ms']:.1f}, p99 "
                     f"{e['p99_ms']:.1f}; per stage p50: pre {st['pre']['p50_ms']:.2f} ms, infer "
                     f"{st['infer']['p50_ms']:.1f} ms, post {st['post']['p50_ms']:.2f} ms")
    return "\n".join(lines)
