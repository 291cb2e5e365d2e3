"""Face-emotion datasets held in memory as uint8 arrays.

Two layouts are read: an image folder (``<root>/<emotion>/*.jpg``) and the original FER2013
Kaggle CSV (``emotion,pixels,Usage`` columns). FER2013 fits in memory easily (28,709 x 48 x 48
bytes = 66 MB), which keeps training free of data-loader processes on a small CPU.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import DatasetError
from ..models._preprocess import to_gray_square
from ..types import Emotion

__all__ = ["FaceDataset", "load_dataset", "load_fer2013_csv", "load_image_folder"]

CLASS_NAMES: tuple[str, ...] = tuple(e.value for e in Emotion)
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
_CSV_USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}


@dataclass(frozen=True)
class FaceDataset:
    """Images (N, size, size) uint8 grayscale, labels (N,) int64 in FER2013 order, and sources."""

    images: np.ndarray
    labels: np.ndarray
    sources: tuple[str, ...]
    skipped: int = 0

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(CLASS_NAMES))

    def fingerprint(self) -> str:
        """SHA-256 of pixels and labels: identifies exactly which data a model saw."""
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(self.images).tobytes())
        digest.update(np.ascontiguousarray(self.labels).tobytes())
        return digest.hexdigest()

    def subset(self, indices: np.ndarray) -> FaceDataset:
        return FaceDataset(self.images[indices], self.labels[indices], tuple(self.sources[i] for i in indices))


def load_image_folder(root: str | Path, *, size: int = 48, skip_unreadable: bool = True) -> FaceDataset:
    """Read ``<root>/<emotion>/<image>``; unknown class folders are an error, unreadable images are
    skipped and counted (or raise with ``skip_unreadable=False``)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}", path=root)
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    unknown = [p.name for p in folders if p.name not in CLASS_NAMES]
    if unknown:
        raise DatasetError(
            f"unknown class folder(s) {unknown} in {root}; expected only {', '.join(CLASS_NAMES)}", path=root
        )
    if not folders:
        raise DatasetError(f"no class folders in {root}; expected <root>/<emotion>/<image>", path=root)
    images: list[np.ndarray] = []
    labels: list[int] = []
    sources: list[str] = []
    skipped = 0
    for folder in folders:
        label = CLASS_NAMES.index(folder.name)
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in _IMAGE_SUFFIXES:
                continue
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if image is None:
                if not skip_unreadable:
                    raise DatasetError(f"unreadable image {path}; fix or remove it", path=path)
                skipped += 1
                continue
            images.append(to_gray_square(image, size))
            labels.append(label)
            sources.append(str(path))
    if not images:
        raise DatasetError(f"no readable images under {root}", path=root)
    return FaceDataset(np.stack(images), np.asarray(labels, dtype=np.int64), tuple(sources), skipped)


def load_fer2013_csv(
    path: str | Path, split: str = "train", *, size: int = 48, skip_unreadable: bool = True
) -> FaceDataset:
    """Read the Kaggle ``fer2013.csv``; ``split`` is train, val or test (Training/PublicTest/PrivateTest).

    Malformed rows are skipped and counted (or raise, naming the line, with ``skip_unreadable=False``).
    """
    path = Path(path)
    if split not in _CSV_USAGE:
        raise DatasetError(f"unknown split {split!r}; use one of {', '.join(_CSV_USAGE)}", path=path)
    usage = _CSV_USAGE[split]
    images: list[np.ndarray] = []
    labels: list[int] = []
    sources: list[str] = []
    skipped = 0
    try:
        handle = path.open(newline="")
    except OSError as exc:
        raise DatasetError(f"cannot open FER2013 CSV {path}: {exc.strerror}", path=path) from None
    with handle:
        reader = csv.DictReader(handle)
        missing = {"emotion", "pixels"} - set(reader.fieldnames or ())
        if missing:
            raise DatasetError(f"{path} lacks column(s) {sorted(missing)}; expected emotion,pixels,Usage", path=path)
        for line, row in enumerate(reader, start=2):
            if row.get("Usage", "Training") != usage:
                continue
            try:
                label = int(row["emotion"])
                pixels = np.array(row["pixels"].split(), dtype=np.uint8)
                side = round(len(pixels) ** 0.5)
                if not 0 <= label < len(CLASS_NAMES) or side * side != len(pixels) or side == 0:
                    raise ValueError
            except (ValueError, AttributeError, TypeError):
                if not skip_unreadable:
                    raise DatasetError(
                        f"{path}:{line}: malformed row (emotion must be 0-6, pixels a square count of 0-255 values)",
                        path=path,
                    ) from None
                skipped += 1
                continue
            images.append(to_gray_square(pixels.reshape(side, side), size))
            labels.append(label)
            sources.append(f"{path.name}:{line}")
    if not images:
        raise DatasetError(f"no {usage} rows in {path}", path=path)
    return FaceDataset(np.stack(images), np.asarray(labels, dtype=np.int64), tuple(sources), skipped)


def load_dataset(
    source: str | Path, split: str = "train", *, size: int = 48, skip_unreadable: bool = True
) -> FaceDataset:
    """Load an image folder, or a FER2013 CSV file (then ``split`` picks its rows)."""
    source = Path(source)
    if source.suffix.lower() == ".csv":
        return load_fer2013_csv(source, split, size=size, skip_unreadable=skip_unreadable)
    return load_image_folder(source, size=size, skip_unreadable=skip_unreadable)
