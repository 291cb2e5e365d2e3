"""Build a training dataset from photos with annotated faces: ``emolens dataset crop``.

Input: a table (CSV, or TSV for a ``.tsv`` file) with one row per face: ``image`` (a path relative
to the table, or an http(s) URL), optionally the face box ``x,y,width,height`` in pixels (empty: the
largest face a detector finds), and one or more annotator labels (columns ``label``, ``label_*``
or ``annotator*``). Each face takes the majority label; a face whose annotators give no majority
(all disagree, or a tie at the top) is set aside and counted, never used.

Output: ``<out>/<train|val|test>/<label>/<row>-<image stem>.png`` face crops (cut the way
``analyze()`` cuts faces), a ``labels.txt`` in each split (the same order everywhere), an
``errors.csv`` with every row that could not be used and why, and ``summary.json`` with the
counts. The split of a row follows a hash of its image and box, so it is stable across re-runs;
a re-run skips rows whose crop exists and retries the rest (failed downloads included).
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .._crop import face_crop
from .._files import check_regular_file
from ..errors import DatasetError
from ..types import Box

__all__ = ["CropSummary", "build_crop_dataset", "majority_vote"]

SPLITS = ("train", "val", "test")
_BOX = ("x", "y", "width", "height")
_MAX_DOWNLOAD_BYTES = 50 << 20


@dataclass
class CropSummary:
    """What ``emolens dataset crop`` did: counts per split and label, rows set aside or failed."""

    written: dict[str, dict[str, int]] = field(default_factory=dict)
    already_done: int = 0
    no_majority: int = 0
    failed: int = 0
    labels: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "written": self.written,
            "already_done": self.already_done,
            "no_majority": self.no_majority,
            "failed": self.failed,
            "labels": list(self.labels),
        }


def majority_vote(labels: Sequence[str]) -> str | None:
    """The label given by more annotators than any other, or None (no labels, or a tie at the top)."""
    counts = Counter(label for label in labels if label)
    if not counts:
        return None
    ranked = counts.most_common(2)
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None
    return ranked[0][0]


def _split_of(key: str, ratios: Sequence[float], seed: int) -> str:
    """A stable split for a row: its position in [0, 1) from a hash, against the cumulative ratios."""
    position = int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big") / 2**64
    total = 0.0
    for split, ratio in zip(SPLITS, ratios, strict=True):
        total += ratio
        if position < total:
            return split
    return SPLITS[len(ratios) - 1]


def _download(url: str, cache: Path, retries: int, timeout: float) -> Path:
    """The URL's content in ``cache`` (downloaded once, with retries; atomic). Raises OSError on failure.

    Each try is bounded in every phase like a weights download (:mod:`emolens._download`), with
    ``timeout`` seconds for the connection, the headers and any pause in the body.
    """
    import dataclasses
    import io

    from .._download import download
    from ..weights import DOWNLOAD_LIMITS

    limits = dataclasses.replace(
        DOWNLOAD_LIMITS, connect_s=timeout, headers_s=timeout, first_byte_s=timeout, read_s=timeout
    )
    suffix = Path(url.split("?")[0]).suffix.lower()[:6] or ".img"
    target = cache / (hashlib.sha1(url.encode(), usedforsecurity=False).hexdigest() + suffix)
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    problem = ""
    for attempt in range(retries):
        if attempt:
            time.sleep(min(2.0, 0.25 * 2**attempt))
        try:
            body = io.BytesIO()
            download(url, body, limits, _MAX_DOWNLOAD_BYTES)
            partial = target.with_name(target.name + ".part")
            partial.write_bytes(body.getvalue())
            partial.replace(target)
            return target
        except OSError as exc:
            problem = f"{type(exc).__name__}: {exc}"
    raise OSError(f"download failed after {retries} tries ({problem})")


def _read_table(path: Path) -> tuple[list[dict[str, str]], list[str]]:
    """The table's rows and its annotator label columns."""
    check_regular_file(path, lambda message: DatasetError(message, path=path), "table")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read table {path}: {exc}", path=path) from None
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    columns = [c.strip() for c in reader.fieldnames or ()]
    label_columns = [c for c in columns if c == "label" or c.startswith(("label_", "annotator"))]
    if "image" not in columns or not label_columns:
        raise DatasetError(
            f"{path} needs an `image` column and at least one label column (`label`, `label_*` or `annotator*`); "
            f"it has {columns}",
            path=path,
        )
    rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    return rows, label_columns


def build_crop_dataset(
    table: str | Path,
    out: str | Path,
    *,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    size: int = 96,
    margin: float = 0.0,
    detector: str | None = "auto",
    retries: int = 3,
    timeout: float = 20.0,
    progress: Callable[[str], None] | None = None,
) -> CropSummary:
    """Crop the annotated faces of ``table`` into a train/val/test image-folder dataset under ``out``."""
    table, out = Path(table), Path(out)
    if len(ratios) not in (2, 3) or any(r < 0 for r in ratios) or abs(sum(ratios) - 1) > 1e-6:
        raise DatasetError(f"split ratios must be 2 or 3 non-negative numbers summing to 1, got {list(ratios)}")
    rows, label_columns = _read_table(table)
    majority = [majority_vote([row.get(c, "") for c in label_columns]) for row in rows]
    labels = tuple(sorted({label for label in majority if label}))
    if not labels:
        raise DatasetError(f"no row of {table} has a majority label")
    summary = CropSummary(labels=labels)
    errors: list[tuple[int, str, str]] = []
    finder = None
    for number, (row, label) in enumerate(zip(rows, majority, strict=True), start=2):
        image_name = row.get("image", "")
        if label is None:
            summary.no_majority += 1
            continue
        key = f"{image_name}|{','.join(row.get(c, '') for c in _BOX)}"
        split = _split_of(key, ratios, seed)
        target = out / split / label / f"{number:06d}-{Path(image_name.split('?')[0]).stem[:60] or 'face'}.png"
        if target.is_file():
            summary.already_done += 1
            continue
        try:
            if image_name.startswith(("http://", "https://")):
                source = _download(image_name, out / ".downloads", retries, timeout)
            elif image_name:
                source = (table.parent / image_name) if not Path(image_name).is_absolute() else Path(image_name)
            else:
                raise ValueError("no image named")
            image = cv2.imread(str(source), cv2.IMREAD_COLOR) if source.is_file() else None
            if image is None:
                raise ValueError(f"unreadable or missing image {source}")
            box = _box_of(row, image)
            if box is None:
                if finder is None:
                    from ..detectors import create_detector

                    finder = create_detector(detector) if detector else None
                found = finder.detect(image) if finder is not None else []
                if not found:
                    raise ValueError("no box given and no face found")
                box = max(found, key=lambda d: d.box.area).box
            crop = face_crop(image, box, margin=margin)
            crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".part.png")
            cv2.imwrite(str(partial), crop)
            partial.replace(target)
        except (OSError, ValueError, cv2.error) as exc:
            errors.append((number, image_name, str(exc)))
            continue
        summary.written.setdefault(split, {}).setdefault(label, 0)
        summary.written[split][label] += 1
        if progress is not None:
            progress(f"{sum(sum(v.values()) for v in summary.written.values())} faces written")
    summary.failed = len(errors)
    out.mkdir(parents=True, exist_ok=True)
    for split in SPLITS[: len(ratios)]:
        if (out / split).is_dir():
            (out / split / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    with (out / "errors.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["line", "image", "error"])
        writer.writerows(errors)
    (out / "summary.json").write_text(json.dumps(summary.to_dict(), indent=2, ensure_ascii=False) + "\n")
    return summary


def _box_of(row: dict[str, str], image: np.ndarray) -> Box | None:
    """The row's face box, or None when its box columns are empty; ValueError for a box off the image."""
    values = [row.get(c, "") for c in _BOX]
    if not any(values):
        return None
    try:
        x, y, w, h = (round(float(v)) for v in values)
    except ValueError:
        raise ValueError(f"box {values} is not four numbers") from None
    height, width = image.shape[:2]
    if w <= 0 or h <= 0 or x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise ValueError(f"box {values} is empty or outside the {width}x{height} image")
    return Box(x, y, w, h)
