"""Where the shared test data is, and how detections are scored against its labelled faces.

One home for what the tests (``tests/conftest.py``), the benchmarks (``benchmarks/_common.py``) and the tools
both need, so a benchmark's recall is computed exactly as the tests compute it, and every tool that calibrates
on training crops takes the same ones.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from emolens import Box

if TYPE_CHECKING:
    import numpy as np

__all__ = ["MATCH_IOU", "SHARED", "labelled_faces", "match_faces", "training_crops"]

REPO = Path(__file__).resolve().parents[1]
#: ../shared beside the repository, or EMOLENS_SHARED.
SHARED = Path(os.environ.get("EMOLENS_SHARED", REPO.parent / "shared")).resolve()
#: A detection finds a labelled face at this IoU (the labels are tight squares, smaller than most detectors' boxes).
MATCH_IOU = 0.3

Truth = tuple[int, int, int, int]


def training_crops(count: int) -> list[np.ndarray]:
    """About ``count`` FER2013 training crops (uint8 gray), the same number of each label, the first of each
    folder in name order: what the tools calibrate on (int8 activation ranges, BatchNorm statistics)."""
    import cv2

    folders = sorted(p for p in (SHARED / "datasets" / "fer2013" / "train").iterdir() if p.is_dir())
    per_class = max(1, count // len(folders))
    files = [f for folder in folders for f in sorted(folder.glob("*.jpg"))[:per_class]]
    return [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files]


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
