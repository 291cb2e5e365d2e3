"""Face recall against the size of the copy a detector runs on: the evidence for detecting on a downscaled copy.

    python benchmarks/detector_sizing.py [--detector yunet] [--out benchmarks/results]

Two checks, no timing (run it beside anything):

- the 43 hand-labelled faces of ../shared/images/dlib-faces (IoU >= 0.3), with the detector run on a copy
  scaled by each factor (boxes mapped back to the full image);
- small faces in large frames: each labelled face, cut with some context, pasted so that its labelled box is
  S pixels wide (S = 16 ... 48) into 1920x1080 canvases of the blurred, enlarged group photo, 12 faces per
  canvas; recall at each factor and size. A face of S pixels in the frame is S x factor pixels where the
  detector looks, so the table says the smallest face the detector still finds, in its own pixels.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from _common import machine, shared_path, write_results
from tools.testdata import labelled_faces, match_faces

from emolens import create_detector
from emolens.types import Box

FACTORS = (1.0, 0.75, 0.5, 0.375, 0.25)
SIZES = (16, 20, 24, 32, 40, 48)
CANVAS = (1920, 1080)


def _detect_scaled(detector: Any, image: np.ndarray, factor: float) -> list[Box]:
    """Boxes found on a copy scaled by ``factor``, in full-image pixels."""
    if factor == 1.0:
        return [d.box for d in detector.detect(image)]
    small = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    boxes = []
    for d in detector.detect(small):
        b = d.box
        x0, y0 = round(b.x / factor), round(b.y / factor)
        boxes.append(Box(x0, y0, round((b.x + b.width) / factor) - x0, round((b.y + b.height) / factor) - y0))
    return boxes


def small_face_canvases(size: int) -> list[tuple[np.ndarray, list[tuple[int, int, int, int]]]]:
    """1920x1080 canvases with every labelled face pasted at ``size`` px (12 per canvas) and their boxes."""
    photos = shared_path("images")
    background = cv2.GaussianBlur(
        cv2.resize(cv2.imread(str(photos / "group" / "multiface.jpg")), CANVAS, interpolation=cv2.INTER_LINEAR),
        (0, 0),
        25,
    )
    faces = []
    for file, boxes in sorted(labelled_faces(photos).items()):
        image = cv2.imread(str(photos / "dlib-faces" / file))
        for x, y, w, h in boxes:
            pad = w // 2
            x0, y0 = max(0, x - pad), max(0, y - pad)
            x1, y1 = min(image.shape[1], x + w + pad), min(image.shape[0], y + h + pad)
            scale = size / w
            patch = cv2.resize(image[y0:y1, x0:x1], None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            faces.append((patch, round((x - x0) * scale), round((y - y0) * scale), size, round(h * scale)))
    canvases = []
    cell = (CANVAS[0] // 4, CANVAS[1] // 3)
    for start in range(0, len(faces), 12):
        canvas = background.copy()
        truth = []
        for i, (patch, fx, fy, fw, fh) in enumerate(faces[start : start + 12]):
            cx, cy = (i % 4) * cell[0] + cell[0] // 3, (i // 4) * cell[1] + cell[1] // 3
            ph, pw = patch.shape[:2]
            canvas[cy : cy + ph, cx : cx + pw] = patch
            truth.append((cx + fx, cy + fy, fw, fh))
        canvases.append((canvas, truth))
    return canvases


def recall(detector: Any, images: list[tuple[np.ndarray, list[tuple[int, int, int, int]]]], factor: float) -> float:
    found = total = 0
    for image, truth in images:
        matched, _ = match_faces(_detect_scaled(detector, image, factor), truth)
        found += matched
        total += len(truth)
    return found / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", default="yunet")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    # the study sets the scale itself: the detector's own cap must not scale again
    detector = create_detector(args.detector, max_side=None)
    photos = shared_path("images")
    labelled = [
        (cv2.imread(str(photos / "dlib-faces" / file)), boxes) for file, boxes in sorted(labelled_faces(photos).items())
    ]
    small = {size: small_face_canvases(size) for size in SIZES}
    rows = []
    for factor in FACTORS:
        row: dict[str, Any] = {"factor": factor, "labelled_recall": recall(detector, labelled, factor)}
        row["small_recall"] = {str(size): recall(detector, small[size], factor) for size in SIZES}
        rows.append(row)
        print(row, flush=True)
    total = sum(len(b) for _, b in labelled)
    lines = [
        f"Recall against detection scale, {args.detector} (`python benchmarks/detector_sizing.py --detector "
        f"{args.detector}`; no timing)",
        "",
        f"| scale of the copy | dlib-faces ({total} labelled) | "
        + " | ".join(f"{s} px faces in 1920x1080" for s in SIZES)
        + " |",
        "|---|---|" + "---|" * len(SIZES),
    ]
    for row in rows:
        f = row["factor"]
        cells = " | ".join(f"{row['small_recall'][str(s)]:.0%} ({s * f:.0f} px)" for s in SIZES)
        lines.append(f"| {f:g} | {row['labelled_recall']:.0%} | {cells} |")
    lines += ["", "(in brackets: the face's width in the pixels the detector sees)"]
    data = {"detector": args.detector, "machine": machine(), "rows": rows}
    write_results(f"detector-sizing-{args.detector}", data, "\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    main()
