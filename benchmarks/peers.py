"""Peer comparison: emolens against the `fer` package on the same photo and the same FER2013 val crops.

    python benchmarks/peers.py [--fer-python PATH] [--per-class N] [--repeat N]

`fer` (TensorFlow, Haar + mini-Xception) is never an emolens dependency. It runs in its own
interpreter (``--fer-python``, e.g. a separate virtual environment's ``bin/python``; default: this
one), through ``_peer_fer.py``. Without it the peer rows are skipped with a note.
Reported side by side: latency of one call on a 640x480 photo (and the ratio emolens / peer), faces
found, and accuracy on FER2013 val crops given as whole-crop face boxes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from _common import machine, shared_path, time_ms, write_results

import emolens
from emolens.models import MODELS

HERE = Path(__file__).resolve().parent
LABELS = [e.value for e in emolens.Emotion]


def val_crops(per_class: int | None) -> list[tuple[str, int]]:
    """(path, label index) of FER2013 val images, the first ``per_class`` of each class if given."""
    root = shared_path("datasets", "fer2013", "val")
    crops = []
    for index, label in enumerate(LABELS):
        files = sorted((root / label).glob("*.jpg"))
        crops += [(str(p), index) for p in files[:per_class]]
    return crops


def emolens_row(model: str, photo: np.ndarray, crops: list[tuple[str, int]], repeat: int) -> dict[str, Any]:
    analyzer = emolens.Analyzer(model=model)
    analyzer.warmup()
    faces = len(analyzer.analyze(photo, fallback=False).faces)
    timing = time_ms(lambda: analyzer.analyze(photo), repeat=repeat)
    on_crops = emolens.Analyzer(detector=None, model=model)
    correct = 0
    for start in range(0, len(crops), 256):
        chunk = crops[start : start + 256]
        results = on_crops.analyze_batch([path for path, _ in chunk])
        correct += sum(r.faces[0].emotion.value == LABELS[label] for r, (_, label) in zip(results, chunk, strict=True))
    return {
        "name": f"emolens ({model} model, {analyzer.detector_name})",
        "faces": faces,
        **timing,
        "accuracy": correct / len(crops),
    }


def fer_row(python: str, photo_path: Path, crops: list[tuple[str, int]], repeat: int) -> dict[str, Any] | str:
    """The peer's measurements, or a note saying why there are none."""
    probe = subprocess.run([python, "-c", "import fer"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"`fer` is not importable by {python}: peer rows skipped (pass --fer-python)"
    with tempfile.TemporaryDirectory() as tmp:
        request = Path(tmp) / "request.json"
        request.write_text(json.dumps({"photo": str(photo_path), "repeat": repeat, "crops": crops}))
        out = subprocess.run([python, str(HERE / "_peer_fer.py"), str(request)], capture_output=True, text=True)
    if out.returncode != 0:
        return f"`fer` failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}"
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    best = max(answer["default_offsets"]["accuracy"], answer["no_offsets"]["accuracy"])
    return {
        "name": f"fer {answer['fer_version']} (Haar + mini-Xception, TFLite)",
        "faces": answer["photo"]["faces"],
        "median_ms": answer["photo"]["median_ms"],
        "p95_ms": answer["photo"]["p95_ms"],
        "accuracy": best,
        "accuracy_default_offsets": answer["default_offsets"]["accuracy"],
        "accuracy_no_offsets": answer["no_offsets"]["accuracy"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fer-python", default=sys.executable, help="Python interpreter that can import fer")
    parser.add_argument("--per-class", type=int, help="val crops per class (default: all 3,589)")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    photo = cv2.resize(
        cv2.imread(str(shared_path("images", "group", "multiface.jpg"))), (640, 480), interpolation=cv2.INTER_AREA
    )
    crops = val_crops(args.per_class)
    rows = [emolens_row(name, photo, crops, args.repeat) for name in MODELS.names()]
    with tempfile.TemporaryDirectory() as tmp:
        photo_path = Path(tmp) / "photo.png"
        cv2.imwrite(str(photo_path), photo)
        peer = fer_row(args.fer_python, photo_path, crops, args.repeat)

    command = "python benchmarks/peers.py" + (f" --per-class {args.per_class}" if args.per_class else "")
    lines = [
        f"Peer comparison (`{command} --fer-python <python with fer>`; group/multiface.jpg resized to "
        f"640x480 with 6 people; {len(crops):,} FER2013 val crops passed as whole-crop face boxes)",
        "",
        "| library | faces reported (6 people) | photo median / p95 ms | val crop accuracy |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['name']} | {r['faces']} | {r['median_ms']:.1f} / {r['p95_ms']:.1f} | {r['accuracy']:.1%} |"
        for r in [*rows, *([peer] if isinstance(peer, dict) else [])]
    ]
    lines.append("")
    if isinstance(peer, dict):
        lines.append(
            f"`fer` accuracy is the better of its default 10 px face padding "
            f"({peer['accuracy_default_offsets']:.1%}) and no padding ({peer['accuracy_no_offsets']:.1%})."
        )
        lines.append("")
        lines += [
            f"- {r['name']} / fer: latency x{r['median_ms'] / peer['median_ms']:.2f}, "
            f"accuracy {100 * (r['accuracy'] - peer['accuracy']):+.1f} points"
            for r in rows
        ]
    else:
        lines.append(peer)
    write_results(
        "peers",
        {"machine": machine(), "emolens": rows, "fer": peer, "crops": len(crops)},
        "\n".join(lines) + "\n",
        args.out,
    )


if __name__ == "__main__":
    main()
