"""Where the shared test data is, and how detections are scored against its labelled faces.

One home for what the tests (``tests/conftest.py``) and the benchmarks (``benchmarks/_common.py``)
both need, so a benchmark's recall is computed exactly as the tests compute it.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from pathlib import Path

from emolens import Box

__all__ = ["MATCH_IOU", "SHARED", "labelled_faces", "match_faces"]

REPO = Path(__file__).resolve().parents[1]
#: ../shared beside the repository, or EMOLENS_SHARED.
SHARED = Path(os.environ.get("EMOLENS_SHARED", REPO.parent / "shared")).resolve()
#: A detection finds a labelled face at this IoU (the labels are tight squares, smaller than most detectors' boxes).
MATCH_IOU = 0.3

Truth = tuple[int, int, int, int]


def labelled_faces(photos: Path) -> dict[str, list[Truth]]:
    """Hand-labelled boxes (x, y, w, h) of the dlib photos, from testing.xml + training.xml."""
    boxes: dict[str, list[Truth]] = {}
    for name in ("testing.xml", "training.xml"):
        root = ET.parse(photos / "dlib-faces" / name).getroot()
        for image in root.iter("image"):
            boxes[image.get("file", "")] = [
                (int(b.get("left", 0)), int(b.get("top", 0)), int(b.get("width", 0)), int(b.get("height", 0)))
                for b in image.iter("box")
            ]
    return boxes


def match_faces(found: Iterable[Box], truth: Sequence[Truth]) -> tuple[int, int]:
    """(labelled faces some detection matches, detections that match no labelled face), at IoU >= MATCH_IOU."""
    detections = list(found)
    boxes = [Box(*t) for t in truth]
    matched = sum(any(d.iou(t) >= MATCH_IOU for d in detections) for t in boxes)
    false = sum(all(d.iou(t) < MATCH_IOU for t in boxes) for d in detections)
    return matched, false
