"""Video benchmark: frames per second at 640x480 and 1280x720, and memory over a long run.

    python benchmarks/video.py [--frames 300] [--long 10000] [--every 1] [--out benchmarks/results]

Test videos are a pan and zoom across ../shared/images/group/multiface.jpg, cropped so that 2 faces
are in view, written as mp4v files and decoded by OpenCV during the run (decoding is included in
the FPS). The long run feeds generated frames through ``analyze_video`` and samples resident memory.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from _common import machine, shared_path, thread_env_note, write_results

import emolens
from emolens.video import analyze_video


def pan_frames(size: tuple[int, int], count: int) -> Iterator[np.ndarray]:
    photo = cv2.imread(str(shared_path("images", "group", "multiface.jpg")))
    region = photo[:, :560]  # the two leftmost people
    h, w = region.shape[:2]
    for i in range(count):
        t = (i % 120) / 119
        scale = 0.95 - 0.1 * abs(np.sin(np.pi * t))
        cw, ch = int(w * scale), int(h * scale)
        x0, y0 = int((w - cw) * t), int((h - ch) / 2)
        yield cv2.resize(region[y0 : y0 + ch, x0 : x0 + cw], size, interpolation=cv2.INTER_AREA)


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def fps_run(
    size: tuple[int, int],
    frames: int,
    every: int,
    folder: Path,
    pipelined: bool = False,
    precision: str = "auto",
    engine: str | None = None,
    tta_margin: float | None = None,
) -> dict[str, float]:
    path = folder / f"pan-{size[0]}x{size[1]}.mp4"
    if not path.exists():
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 30, size)
        for frame in pan_frames(size, frames):
            writer.write(frame)
        writer.release()
    model = emolens.load_model("default", precision=precision)
    if tta_margin is not None:
        model = model.with_options(tta_margin=tta_margin)
    analyzer = emolens.Analyzer(model=model, detector_options={"engine": engine} if engine else None)
    list(analyze_video(path, max_frames=5, analyzer=analyzer))  # warm up
    start = time.perf_counter()
    results = list(analyze_video(path, every=every, pipelined=pipelined, analyzer=analyzer))
    seconds = time.perf_counter() - start
    faces = np.mean([len(r.faces) for r in results])
    return {
        "frames_read": frames,
        "frames_analysed": len(results),
        "seconds": seconds,
        "fps_input": frames / seconds,
        "fps_analysed": len(results) / seconds,
        "mean_faces": float(faces),
    }


def long_run(count: int) -> dict[str, object]:
    samples = []
    for result in analyze_video(pan_frames((640, 480), count)):
        if result.index % 1000 == 0 or result.index == count - 1:
            samples.append((result.index, rss_mb()))
    steady = [mb for index, mb in samples if index >= 1000]
    return {"frames": count, "rss_mb": samples, "growth_after_1000_frames_mb": max(steady) - min(steady)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--long", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    detector = emolens.Analyzer().detector_name
    with tempfile.TemporaryDirectory() as folder:
        runs = {  # each size sequential, then with detection in a second thread (a ratio taken in one run)
            f"{w}x{h}{' pipelined' if pipelined else ''}": fps_run(
                (w, h), args.frames, args.every, Path(folder), pipelined
            )
            for w, h in ((640, 480), (1280, 720))
            for pipelined in (False, True)
        }
        runs["640x480 int8"] = fps_run((640, 480), args.frames, args.every, Path(folder), precision="int8")
        # flip TTA on every face, as before 2026-12-07 (the default mirrors only the faces it is unsure of)
        runs["640x480, flip TTA on every face"] = fps_run(
            (640, 480), args.frames, args.every, Path(folder), tta_margin=1.0
        )
        # YuNet's engine before onnxruntime became its default, beside the rows above
        runs["640x480, YuNet on OpenCV"] = fps_run((640, 480), args.frames, args.every, Path(folder), engine="opencv")
    memory = long_run(args.long) if args.long else None
    lines = [
        f"Video (`python benchmarks/video.py --frames {args.frames} --long {args.long} --every {args.every}`; "
        f'detector {detector}, default model (int8: `precision="int8"`), decoding included; '
        f"host: {machine()['cpu']}{thread_env_note()})",
        "",
        "| video | faces per frame | frames analysed | FPS (input frames per second) |",
        "|---|---|---|---|",
        *(
            f"| {k} | {v['mean_faces']:.1f} | {v['frames_analysed']} of {v['frames_read']} | {v['fps_input']:.1f} |"
            for k, v in runs.items()
        ),
    ]
    if memory is not None:
        lines += [
            "",
            f"Memory over {memory['frames']:,} frames of 640x480: resident "
            + ", ".join(f"{mb:.0f} MB @ {i:,}" for i, mb in memory["rss_mb"])  # type: ignore[attr-defined]
            + f"; growth after frame 1,000: {memory['growth_after_1000_frames_mb']:.1f} MB.",
        ]
    write_results(
        f"video-every{args.every}",
        {"machine": machine(), "detector": detector, "runs": runs, "memory": memory},
        "\n".join(lines) + "\n",
        args.out,
    )


if __name__ == "__main__":
    main()
