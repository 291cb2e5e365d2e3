"""``emolens video``: track faces through a video or webcam."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .._argtypes import positive_int, unit_interval
from ._common import (
    add_pipeline_options,
    detector_arg,
    err,
    max_pixels,
    output_file,
)


def register(sub: Any) -> None:
    """Add ``emolens video`` to the subcommands."""
    p = sub.add_parser("video", help="track faces through a video or webcam and write an emotion timeline")
    p.add_argument("source", help="video file, or a camera index such as 0 for the default webcam")
    p.add_argument("--out", metavar="MP4", help="write an annotated copy (boxes, track ids, emotions)")
    p.add_argument("--csv", metavar="CSV", help="write the timeline: one row per face per frame")
    p.add_argument("--plot", metavar="PNG", help="plot probabilities over time per track (needs emolens[plot])")
    p.add_argument("--every", type=positive_int, default=1, metavar="N", help="process every N-th frame")
    p.add_argument("--max-frames", type=positive_int, metavar="N", help="stop after N processed frames")
    p.add_argument("--smoothing", type=unit_interval, default=0.6, help="EMA weight of past probabilities (0 = off)")
    add_pipeline_options(p)
    p.add_argument(
        "--pipelined",
        action="store_true",
        help="detect the next frames in a second thread while one is classified (same results)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from .._analyzer import Analyzer
    from ..video import AnnotatedVideoWriter, VideoAnalysis, analyze_video, open_source

    source: str | int = int(args.source) if args.source.lstrip("-").isdigit() else args.source
    for option, value in (("--csv", args.csv), ("--plot", args.plot), ("--out", args.out)):
        output_file(option, value)  # before any frame is analysed: a bad path must not cost the whole video
    if args.plot:
        from .._optional import require

        require("matplotlib", extra="plot", feature="--plot")
    frames = open_source(source, max_pixels=max_pixels(args))  # fails early for a missing file or camera
    total = frames.frame_count
    if total is not None:
        total = -(-total // args.every)
        if args.max_frames is not None:
            total = min(total, args.max_frames)
    analyzer = Analyzer(
        detector_arg(args.detector),
        args.model,
        device=args.device,
        fallback=False,
        detector_options=args.detector_options,
        precision=args.precision,
        max_pixels=max_pixels(args),
    )
    analysis = VideoAnalysis()
    writer: AnnotatedVideoWriter | None = None
    started = time.perf_counter()
    interrupted = False
    try:
        stream = analyze_video(
            frames,
            every=args.every,
            smoothing=args.smoothing,
            max_frames=args.max_frames,
            analyzer=analyzer,
            pipelined=args.pipelined,
        )
        for frame in stream:
            analysis.add(frame)
            if args.out:
                if writer is None:
                    writer = AnnotatedVideoWriter(args.out, frames.fps / args.every, (frame.width, frame.height))
                writer.write(frame)
            if not args.quiet:
                _progress(analysis.frames, total, time.perf_counter() - started)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if writer is not None:
            writer.close()
        if not args.quiet:
            print(file=sys.stderr)
    if args.csv:
        analysis.to_csv(args.csv)
    if args.plot:
        analysis.plot_timeline(args.plot)
    for summary in analysis.summary().values():
        shares = ", ".join(f"{label} {s:.0%}" for label, s in summary.shares.items() if s >= 0.05)
        print(
            f"track {summary.track_id}: {summary.frames} frames, {summary.first_time:.1f}-{summary.last_time:.1f} s, "
            f"mostly {summary.dominant} ({shares})"
        )
    if interrupted:
        err(f"interrupted after {analysis.frames} frames; outputs hold everything collected so far")
        return 130
    return 0


def _progress(done: int, total: int | None, seconds: float) -> None:
    fps = done / seconds if seconds > 0 else 0.0
    if total:
        eta = (total - done) / fps if fps > 0 else 0.0
        line = f"\r{done}/{total} frames  {fps:.1f} FPS  ETA {eta:.0f} s "
    else:
        line = f"\r{done} frames  {fps:.1f} FPS "
    print(line, end="", file=sys.stderr, flush=True)
