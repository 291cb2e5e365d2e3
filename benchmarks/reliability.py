"""Reliability figures: hostile inputs by outcome, the slowest and the costliest case, memory per analysis
for every detector and for a server under hostile uploads, threads, and memory over a soak.

python benchmarks/reliability.py [--cases 10000] [--soak 3000] [--out benchmarks/results]

The inputs are generated with a fixed seed: mutated and truncated JPEG/PNG/TIFF/WebP/BMP files of a real
photo, random bytes behind real magic numbers, header bombs, PNG chunks whose length lies, TIFF
directories with duplicated or oversized tags, BMPs of every header layout, progressive JPEGs with up to
400 empty scans, images with a side beyond 32,767 pixels, arrays of every dtype and odd shapes and
strides, and hostile paths (tools/hostile.py).
Each is analysed with YuNet and the fast model; the outcome is the result or the type of the exception,
and the peak memory the case adds is measured. Anything outside the emolens tree is a failure.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import os
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from _common import machine, shared_path, write_results
from tools.hostile import (
    bmp,
    hostile_uploads,
    jpeg_with_scans,
    peak_memory,
    png_chunks,
    png_with_chunk_length,
    tall_with_face,
    tiff,
)

import emolens
from emolens import EmolensError


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b"")


def inputs(count: int, seed: int, tmp: Path) -> Iterator[tuple[str, Any]]:
    """(kind, input) pairs: a deterministic mix of hostile inputs, made one at a time (a 68x32768 image is 6.7 MB:
    holding 10,000 cases at once would cost the process gigabytes that later figures would count)."""
    rng = np.random.default_rng(seed)
    photo = cv2.resize(cv2.imread(str(shared_path("images", "dlib-faces", "2008_002470.jpg"))), (160, 120))
    encoded = {kind: bytes(cv2.imencode(f".{kind}", photo)[1]) for kind in ("jpg", "png", "tiff", "webp", "bmp")}
    fifo = tmp / "fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    paths: list[Any] = ["/dev/zero", str(fifo), str(tmp), "x" * 5000, "", "\x00", "/proc/self/mem", "missing.jpg"]
    bombs = [_png_header(w, h) for w, h in ((100_000, 100_000), (32_000, 32_000), (0, 5))] + [
        b"v/1\x01" + bytes(100),
        b"\xff\xd8\xff\xc0\x00\x11\x08\xff\xff\xff\xff\x03" + bytes(20),
        b"GIF89a\xff\xff\xff\xff" + bytes(20),
    ]
    dtypes = [np.uint8, np.int8, np.uint16, np.int32, np.float16, np.float32, np.float64, bool, np.complex64]
    chunk_count = len(png_chunks(encoded["png"]))
    progressive = bytes(cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1])
    kinds = [
        "mutated",
        "truncated",
        "random",
        "bomb",
        "array",
        "path",
        "png-chunk",
        "tiff-tags",
        "bmp",
        "jpeg-scans",
        "tall",
    ]
    for index in range(count):
        kind = kinds[index % len(kinds)]
        if kind in ("mutated", "truncated"):
            data = bytearray(encoded[sorted(encoded)[rng.integers(len(encoded))]])
            if kind == "mutated":
                for _ in range(rng.integers(1, 9)):
                    data[rng.integers(len(data))] = rng.integers(256)
            else:
                data = data[: rng.integers(1, len(data))]
            yield kind, bytes(data)
        elif kind == "random":
            magic = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF\x00\x00\x00\x00WEBP", b"II*\x00", b"BM"]
            yield kind, magic[rng.integers(len(magic))] + rng.bytes(int(rng.integers(0, 600)))
        elif kind == "bomb":
            yield kind, bombs[index // 6 % len(bombs)]
        elif kind == "array":
            ndim = int(rng.integers(0, 5))
            shape = tuple(int(v) for v in rng.integers(0, 50, size=ndim))
            array = (rng.random(shape) * 300 - 20).astype(dtypes[rng.integers(len(dtypes))])
            yield kind, array[::2] if ndim else array
        elif kind == "path":
            yield kind, paths[index // 6 % len(paths)]
        elif kind == "png-chunk":
            length = int(rng.choice([2**31 - 1, 2**32 - 1, int(rng.integers(0, 2**32))]))
            keep = None if rng.random() < 0.5 else int(rng.integers(0, 9000))
            yield kind, png_with_chunk_length(encoded["png"], int(rng.integers(chunk_count)), length, keep)
        elif kind == "tiff-tags":
            tags = [256, 257, 258, 277, 278, 322, 323]
            extra = [
                (int(rng.choice(tags)), int(rng.choice([3, 4])), int(rng.integers(0, 70_000)))
                for _ in range(int(rng.integers(0, 4)))
            ]
            yield kind, tiff(photo, extra, big_endian=bool(rng.random() < 0.5))
        elif kind == "bmp":
            yield kind, bmp(photo, int(rng.choice([12, 40, 108, 124, 0, 13, 1 << 20])))
        elif kind == "jpeg-scans":
            yield kind, jpeg_with_scans(progressive, int(rng.integers(0, 400)))
        else:  # a side beyond OpenCV's 32,767-pixel addressing limit, with a face in it
            tall = tall_with_face(photo)
            yield kind, tall if rng.random() < 0.5 else np.ascontiguousarray(np.swapaxes(tall, 0, 1))


def fuzz(count: int, seed: int, tmp: Path) -> dict[str, Any]:
    analyzer = emolens.Analyzer("yunet", "fast")
    outcomes: collections.Counter[str] = collections.Counter()
    escaped: list[str] = []
    slowest = 0.0
    costliest: tuple[float, str] = (0.0, "")
    for kind, value in inputs(count, seed, tmp):
        start = time.perf_counter()
        with peak_memory() as memory:
            try:
                analyzer.analyze(value)
                outcomes["ok"] += 1
            except EmolensError as exc:
                outcomes[type(exc).__name__] += 1
            except Exception as exc:  # the figure that must stay 0
                escaped.append(f"{kind}: {type(exc).__name__}: {exc}")
        slowest = max(slowest, time.perf_counter() - start)
        costliest = max(costliest, (memory.mb, kind))
    return {
        "cases": count,
        "outcomes": dict(outcomes.most_common()),
        "escaped": escaped,
        "slowest_s": slowest,
        "peak_mb_per_case": costliest[0],
        "costliest_kind": costliest[1],
    }


def jpeg_scan_cost(counts: tuple[int, ...] = (0, 1_000, 4_000)) -> list[dict[str, Any]]:
    """What a progressive 6000x6000 JPEG with ``count`` more empty scans costs OpenCV's decoder alone (what
    emolens' scan limit prevents), and how long emolens takes to refuse it."""
    flat = np.full((6000, 6000, 3), 128, np.uint8)  # a flat grey image: a small file
    base = bytes(cv2.imencode(".jpg", flat, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1])
    rows = []
    for count in counts:
        data = jpeg_with_scans(base, count)
        start = time.perf_counter()
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        decode_s = time.perf_counter() - start
        start = time.perf_counter()
        try:
            emolens.load_image(data)
            outcome = "decoded"
        except EmolensError as exc:
            outcome = type(exc).__name__
        rows.append(
            {
                "extra_scans": count,
                "file_bytes": len(data),
                "opencv_decoded": decoded is not None,
                "opencv_s": decode_s,
                "emolens": outcome,
                "emolens_s": time.perf_counter() - start,
            }
        )
    return rows


def detector_memory() -> dict[str, Any]:
    """Peak memory one analysis of a 6324x6324 JPEG (just under 40 megapixels) adds, per available detector."""
    from emolens.detectors import DETECTORS

    photo = cv2.imread(str(shared_path("images", "dlib-faces", "2008_002470.jpg")))
    data = bytes(cv2.imencode(".jpg", cv2.resize(photo, (6324, 6324)), [cv2.IMWRITE_JPEG_QUALITY, 80])[1])
    rows: dict[str, Any] = {}
    seeded = shared_path("weights")  # third-party weights from ../shared, copied into a cache of its own
    if "EMOLENS_HOME" not in os.environ and seeded.is_dir():
        import shutil
        import tempfile

        home = Path(tempfile.mkdtemp(prefix="emolens-home-"))
        for file in seeded.iterdir():
            shutil.copy(file, home / file.name)
        os.environ["EMOLENS_HOME"] = str(home)
    for name in ("haar", "yunet", "retinaface-mobilenet", "dlib-hog", "dlib-cnn"):
        if name not in DETECTORS.names():
            continue
        try:
            analyzer = emolens.Analyzer(name, "fast")
        except EmolensError as exc:  # an optional extra not installed, or weights not reachable
            rows[name] = {"skipped": f"{type(exc).__name__}: {exc}"[:160]}
            continue
        start = time.perf_counter()
        with peak_memory() as memory:
            faces = len(analyzer.analyze(data).faces)
        rows[name] = {"peak_mb": memory.mb, "seconds": time.perf_counter() - start, "faces": faces}
    return rows


def server_memory(tmp: Path) -> dict[str, Any]:
    """Peak memory a server with 2 analysis threads adds while 7 hostile uploads arrive at once."""
    import urllib.request

    from tools.server import running_server

    photo = cv2.imread(str(shared_path("images", "dlib-faces", "2008_002470.jpg")))
    png = bytes(cv2.imencode(".png", cv2.resize(photo, (96, 72)))[1])
    uploads = [body for body, _ in hostile_uploads(photo)]

    def post(url: str, body: bytes) -> int:
        request = urllib.request.Request(url, data=body, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def status_mb(pid: int, field: str) -> float:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return float("nan")

    args = ["--model", "fast", "--threads", "2", "--max-in-flight", "8", "--no-warmup"]
    with running_server(args, log=tmp / "server.log") as server:
        post(f"{server.url}/v1/analyze", png)
        Path(f"/proc/{server.pid}/clear_refs").write_text("5")
        baseline = status_mb(server.pid, "VmRSS")
        with concurrent.futures.ThreadPoolExecutor(len(uploads)) as pool:
            statuses = list(pool.map(lambda body: post(f"{server.url}/v1/analyze", body), uploads))
        peak = status_mb(server.pid, "VmHWM")
    return {"uploads": len(uploads), "statuses": statuses, "baseline_mb": baseline, "added_mb": peak - baseline}


def threads(workers: int = 8, rounds: int = 40) -> dict[str, Any]:
    """The same photos analysed from ``workers`` threads at once give bit-identical results."""
    analyzer = emolens.Analyzer("yunet", "default")
    photos = sorted(shared_path("images", "dlib-faces").glob("*.jpg"))
    reference = {p: analyzer.analyze(p).faces for p in photos}
    jobs = [photos[i % len(photos)] for i in range(rounds * workers)]
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda p: (p, analyzer.analyze(p).faces), jobs))
    differing = sum(1 for p, faces in results if faces != reference[p])
    return {"threads": workers, "calls": len(jobs), "differing_results": differing}


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def soak(calls: int) -> dict[str, Any]:
    """Resident memory over ``calls`` analyses of varied inputs (after a warm-up of 100)."""
    photos = [cv2.imread(str(p)) for p in sorted(shared_path("images", "dlib-faces").glob("*.jpg"))]
    for i in range(100):
        emolens.analyze(photos[i % len(photos)])
    start = _rss_mb()
    samples = []
    for i in range(calls):
        emolens.analyze(photos[i % len(photos)], model=("default", "fast")[i % 2])
        if i % max(1, calls // 10) == 0:
            samples.append(_rss_mb())
    return {"calls": calls, "rss_start_mb": start, "rss_end_mb": _rss_mb(), "rss_samples_mb": samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--soak", type=int, default=3_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        fuzzed = fuzz(args.cases, args.seed, Path(tmp))
        threaded = threads()
        soaked = soak(args.soak)
        served = server_memory(Path(tmp))
    scans = jpeg_scan_cost()
    detectors = detector_memory()  # last: a detector's peak stays resident (the allocator keeps it)
    command = f"python benchmarks/reliability.py --cases {args.cases} --soak {args.soak} --seed {args.seed}"
    lines = [
        f"Reliability (`{command}`)",
        "",
        f"Hostile inputs: {fuzzed['cases']:,} cases, {len(fuzzed['escaped'])} exceptions outside the emolens tree, "
        f"slowest case {fuzzed['slowest_s'] * 1e3:.0f} ms, most memory added by one case "
        f"{fuzzed['peak_mb_per_case']:.0f} MB ({fuzzed['costliest_kind']}).",
        "",
        "| outcome | cases |",
        "|---|---|",
        *(f"| {name} | {n:,} |" for name, n in fuzzed["outcomes"].items()),
        "",
        "Memory one analysis of a 6324x6324 JPEG (just under the 40-megapixel limit) adds, default settings:",
        "",
        "| detector | peak MB added | seconds | faces |",
        "|---|---|---|---|",
        *(
            f"| {name} | {row['peak_mb']:.0f} | {row['seconds']:.1f} | {row['faces']} |"
            if "peak_mb" in row
            else f"| {name} | not measured: {row['skipped']} | | |"
            for name, row in detectors.items()
        ),
        "",
        "A progressive 6000x6000 JPEG with empty scans added (`tools.hostile.jpeg_with_scans`): what OpenCV's",
        "decoder alone spends on it, and what `emolens.load_image` does:",
        "",
        "| scans added | file KB | OpenCV decode s | emolens | emolens s |",
        "|---|---|---|---|---|",
        *(
            f"| {row['extra_scans']:,} | {row['file_bytes'] / 1024:,.0f} | {row['opencv_s']:.2f} | {row['emolens']} | "
            f"{row['emolens_s']:.2f} |"
            for row in scans
        ),
        "",
        f"Server (`emolens serve --threads 2 --max-in-flight 8`, model `fast`): {served['uploads']} hostile uploads at "
        f"once (statuses {', '.join(map(str, served['statuses']))}) added {served['added_mb']:.0f} MB to its "
        f"{served['baseline_mb']:.0f} MB.",
        "",
        f"Threads: {threaded['calls']} analyses from {threaded['threads']} threads sharing one Analyzer, "
        f"{threaded['differing_results']} results differing from the single-thread ones.",
        "",
        f"Soak: {soaked['calls']:,} `analyze()` calls alternating two models: resident memory "
        f"{soaked['rss_start_mb']:.0f} MB after warm-up, {soaked['rss_end_mb']:.0f} MB at the end.",
    ]
    write_results(
        "reliability",
        {
            "machine": machine(),
            "fuzz": fuzzed,
            "detector_memory": detectors,
            "server_memory": served,
            "jpeg_scans": scans,
            "threads": threaded,
            "soak": soaked,
            "command": command,
        },
        "\n".join(lines) + "\n",
        args.out,
    )


if __name__ == "__main__":
    main()
