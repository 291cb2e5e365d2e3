"""Face-emotion datasets held in memory as uint8 arrays, with FER+ crowd votes when available.

Two layouts are read: an image folder (``<root>/<emotion>/*.jpg``) and the original FER2013
Kaggle CSV (``emotion,pixels,Usage`` columns). FER2013 fits in memory easily (28,709 x 48 x 48
bytes = 66 MB), which keeps training free of data-loader processes on a small CPU.

FER+ (Barsoum et al. 2016) gave every FER2013 image 10 crowd votes. They are attached as a
``votes`` array (N, 10) in :data:`~emolens.labels.FERPLUS_VOTE_COLUMNS` order, all zeros for an
image without votes, from a table ``file,neutral,...,not_face`` keyed by path relative to the split
folder (found at ``<split>/../ferplus/<split name>.csv`` when not given), or, for the Kaggle CSV,
from Microsoft's ``fer2013new.csv`` matched row by row (found beside it).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .._files import check_regular_file
from .._header import IMAGE_SUFFIXES
from ..errors import DatasetError, InvalidOptionError
from ..labels import FER2013, FERPLUS_VOTE_COLUMNS
from ..models import resize_square, to_gray_square

__all__ = ["AUTO", "FaceDataset", "load_dataset", "load_fer2013_csv", "load_image_folder", "read_ferplus_table"]

CLASS_NAMES: tuple[str, ...] = FER2013.labels
AUTO = "auto"  # look for FER+ votes in their usual place
VOTE_COLUMNS: tuple[str, ...] = tuple(column for column, _ in FERPLUS_VOTE_COLUMNS)
_VOTE_ALIASES = {"NF": "not_face"}  # Microsoft's fer2013new.csv spells not_face "NF"
_CSV_USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}


@dataclass(frozen=True)
class FaceDataset:
    """Images (N, size, size) uint8 grayscale (or (N, size, size, 3) BGR, read for a colour model), labels
    (N,) int64 indices into ``classes``, and sources.

    ``votes`` is (N, 10) float32 FER+ vote counts (:data:`VOTE_COLUMNS` order, a row of zeros for an
    image without votes), or ``None`` when the data has no FER+ votes at all.
    """

    images: np.ndarray
    labels: np.ndarray
    sources: tuple[str, ...]
    skipped: int = 0
    votes: np.ndarray | None = None
    classes: tuple[str, ...] = CLASS_NAMES  # label names; ``labels`` index into them

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(self.classes))

    @property
    def has_votes(self) -> np.ndarray:
        """(N,) bool: which images have FER+ votes."""
        if self.votes is None:
            return np.zeros(len(self), dtype=bool)
        return np.asarray(self.votes.sum(1) > 0)

    def fingerprint(self) -> str:
        """SHA-256 of pixels, labels and votes (when attached): identifies exactly which data a model saw."""
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(self.images).tobytes())
        digest.update(np.ascontiguousarray(self.labels).tobytes())
        if self.votes is not None:
            digest.update(np.ascontiguousarray(self.votes).tobytes())
        return digest.hexdigest()

    def subset(self, indices: np.ndarray) -> FaceDataset:
        votes = None if self.votes is None else self.votes[indices]
        sources = tuple(self.sources[i] for i in indices)
        return FaceDataset(self.images[indices], self.labels[indices], sources, votes=votes, classes=self.classes)

    def without_votes(self) -> FaceDataset:
        """The same images and labels with the FER+ votes dropped."""
        return FaceDataset(self.images, self.labels, self.sources, self.skipped, classes=self.classes)

    def vote_summary(self) -> str:
        """One line: how many images have FER+ votes."""
        if self.votes is None:
            return f"{len(self)} images, no FER+ votes"
        return f"{len(self)} images, {int(self.has_votes.sum())} with FER+ votes"


def _vote_columns(fieldnames: Sequence[str] | None, path: Path, key: str) -> list[str]:
    """The header names of the 10 vote columns, in VOTE_COLUMNS order (DatasetError when one is missing)."""
    names = {(_VOTE_ALIASES.get(name.strip(), name.strip())): name for name in fieldnames or ()}
    missing = [column for column in (key, *VOTE_COLUMNS) if column not in names]
    if missing:
        raise DatasetError(
            f"{path} lacks column(s) {missing}; a FER+ vote table has {key},{','.join(VOTE_COLUMNS)}", path=path
        )
    return [names[column] for column in VOTE_COLUMNS]


@contextlib.contextmanager
def _vote_rows(path: Path, key: str) -> Iterator[tuple[Iterator[tuple[int, dict[str, str]]], list[str]]]:
    """The (line number, row) pairs of a FER+ vote CSV and its vote column names, the file open meanwhile."""
    check_regular_file(path, lambda message: DatasetError(message, path=path), "FER+ votes")
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"cannot open FER+ votes {path}: {exc.strerror}", path=path) from None
    with handle:
        reader = csv.DictReader(handle)
        yield enumerate(reader, start=2), _vote_columns(reader.fieldnames, path, key)


def _parse_votes(row: dict[str, str], columns: list[str]) -> np.ndarray | None:
    """The 10 vote counts of a row, or None when one is not a non-negative integer."""
    try:
        votes = np.array([int(row[column]) for column in columns], dtype=np.float32)
    except (TypeError, ValueError):
        return None
    return None if (votes < 0).any() else votes


def read_ferplus_table(path: str | Path, *, skip_unreadable: bool = True) -> tuple[dict[str, np.ndarray], int]:
    """Read a FER+ vote table ``file,neutral,...,not_face``: ({relative path: votes (10,)}, rows skipped).

    Malformed rows (a count that is not a non-negative integer, a file named twice) are skipped and
    counted, or raise naming the line with ``skip_unreadable=False``.
    """
    path = Path(path)
    table: dict[str, np.ndarray] = {}
    skipped = 0
    with _vote_rows(path, "file") as (rows, columns):
        for line, row in rows:
            name = (row.get("file") or "").strip().replace("\\", "/")
            votes = _parse_votes(row, columns)
            if votes is None or not name or name in table:
                if not skip_unreadable:
                    problem = "names a file twice" if name in table else "needs a file and 10 non-negative counts"
                    raise DatasetError(f"{path}:{line}: malformed FER+ row ({problem})", path=path)
                skipped += 1
                continue
            table[name] = votes
    return table, skipped


def _ferplus_beside(root: Path) -> Path | None:
    """Where FER+ votes for an image folder usually are: ``<root>/../ferplus/<root name>.csv``."""
    candidate = root.parent / "ferplus" / f"{root.name}.csv"
    return candidate if candidate.is_file() else None


LABELS_FILE = "labels.txt"


def read_labels_file(path: Path) -> dict[str, str]:
    """``labels.txt``: one class per line, ``label`` or ``folder = label``, in output order ({folder: label})."""
    mapping: dict[str, str] = {}
    check_regular_file(path, lambda message: DatasetError(message, path=path), "labels file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read labels file {path}: {exc}", path=path) from None
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        folder, _, label = (part.strip() for part in line.partition("=")) if "=" in line else (line, "", line)
        if not folder or not label or folder in mapping or label in mapping.values():
            raise DatasetError(f"{path}:{number}: expected `label` or `folder = label`, each once", path=path)
        mapping[folder] = label
    if not mapping:
        raise DatasetError(f"labels file {path} names no class", path=path)
    return mapping


def _class_folders(root: Path, labels_file: Path | None) -> tuple[tuple[str, ...], dict[str, str]]:
    """(class names in output order, {folder name: class name}) of an image folder dataset.

    Folders named after FER2013 classes keep FER2013's order and label indices; other names are
    custom labels, sorted (or in a labels file's order). A mix of the two is refused, as it is
    most likely a misspelt emotion folder.
    """
    folders = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not folders:
        raise DatasetError(f"no class folders in {root}; expected <root>/<label>/<image>", path=root)
    if labels_file is None and (root / LABELS_FILE).is_file():
        labels_file = root / LABELS_FILE
    if labels_file is not None:
        mapping = read_labels_file(labels_file)
        extra = [folder for folder in folders if folder not in mapping]
        if extra:
            raise DatasetError(f"class folder(s) {extra} in {root} are not in {labels_file}", path=root)
        return tuple(mapping.values()), {folder: mapping[folder] for folder in folders}
    custom = [folder for folder in folders if folder not in CLASS_NAMES]
    if not custom:
        return CLASS_NAMES, {folder: folder for folder in folders}
    if len(custom) < len(folders):
        raise DatasetError(
            f"class folder(s) {custom} in {root} are not FER2013 emotions ({', '.join(CLASS_NAMES)}), but the "
            f"others are: fix the folder name, or list every class in a {LABELS_FILE} to use your own labels",
            path=root,
        )
    return tuple(folders), {folder: folder for folder in folders}


def load_image_folder(
    root: str | Path,
    *,
    size: int = 48,
    skip_unreadable: bool = True,
    ferplus: str | Path | None = AUTO,
    labels_file: str | Path | None = None,
    color: str = "gray",
) -> FaceDataset:
    """Read ``<root>/<label>/<image>``; unreadable images are skipped and counted (or raise with
    ``skip_unreadable=False``). ``color="bgr"`` keeps colour (for models whose input is RGB), ``"gray"``
    reads grayscale.

    Class folders named after the FER2013 emotions give FER2013's classes; any other names are
    your own labels (sorted, or in the order of ``labels_file``, default ``<root>/labels.txt``,
    which may also map folders to label names). ``ferplus`` is a FER+ vote table for these images
    (``AUTO``: ``<root>/../ferplus/<root name>.csv`` when it exists; ``None``: no votes).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}", path=root)
    if color not in ("gray", "bgr"):
        raise InvalidOptionError(f"color must be 'gray' or 'bgr', not {color!r}", option="color")
    flags = cv2.IMREAD_GRAYSCALE if color == "gray" else cv2.IMREAD_COLOR
    classes, class_of = _class_folders(root, None if labels_file is None else Path(labels_file))
    images: list[np.ndarray] = []
    labels: list[int] = []
    sources: list[str] = []
    skipped = 0
    for folder_name in sorted(class_of):
        folder = root / folder_name
        label = classes.index(class_of[folder_name])
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            image = cv2.imread(str(path), flags)
            if image is None:
                if not skip_unreadable:
                    raise DatasetError(f"unreadable image {path}; fix or remove it", path=path)
                skipped += 1
                continue
            images.append(to_gray_square(image, size) if color == "gray" else resize_square(image, size))
            labels.append(label)
            sources.append(str(path))
    if not images:
        raise DatasetError(f"no readable images under {root}", path=root)
    table_path = _ferplus_beside(root) if ferplus == AUTO else None if ferplus is None else Path(ferplus)
    votes = None
    if table_path is not None:
        table, _ = read_ferplus_table(table_path, skip_unreadable=skip_unreadable)
        relative = [Path(source).relative_to(root).as_posix() for source in sources]
        votes = np.stack([table.get(name, np.zeros(len(VOTE_COLUMNS), np.float32)) for name in relative])
        if not votes.any():
            raise DatasetError(
                f"the FER+ table {table_path} names none of the images under {root}: its `file` column must "
                "be relative to that folder (e.g. angry/Training_10118481.jpg)",
                path=table_path,
            )
    return FaceDataset(np.stack(images), np.asarray(labels, dtype=np.int64), tuple(sources), skipped, votes, classes)


def _read_fer2013new(path: Path, skip_unreadable: bool) -> list[np.ndarray | None]:
    """Microsoft's ``fer2013new.csv``: one entry per row (None for a row FER+ dropped or could not parse)."""
    entries: list[np.ndarray | None] = []
    with _vote_rows(path, "Image name") as (rows, columns):
        for line, row in rows:
            votes = _parse_votes(row, columns)
            if votes is None and not skip_unreadable:
                raise DatasetError(f"{path}:{line}: malformed FER+ row (10 non-negative counts expected)", path=path)
            entries.append(votes if (row.get("Image name") or "").strip() else None)
    return entries


def load_fer2013_csv(
    path: str | Path,
    split: str = "train",
    *,
    size: int = 48,
    skip_unreadable: bool = True,
    ferplus: str | Path | None = AUTO,
) -> FaceDataset:
    """Read the Kaggle ``fer2013.csv``; ``split`` is train, val or test (Training/PublicTest/PrivateTest).

    Malformed rows are skipped and counted (or raise, naming the line, with ``skip_unreadable=False``).
    ``ferplus`` is Microsoft's ``fer2013new.csv``, whose rows follow the Kaggle file's row for row
    (``AUTO``: the one beside ``path`` when it exists; ``None``: no votes).
    """
    path = Path(path)
    if split not in _CSV_USAGE:
        raise DatasetError(f"unknown split {split!r}; use one of {', '.join(_CSV_USAGE)}", path=path)
    usage = _CSV_USAGE[split]
    new_path = (path.parent / "fer2013new.csv") if ferplus == AUTO else None if ferplus is None else Path(ferplus)
    vote_rows = _read_fer2013new(new_path, skip_unreadable) if new_path and new_path.is_file() else None
    if ferplus not in (AUTO, None) and vote_rows is None:
        raise DatasetError(f"FER+ file not found: {ferplus}", path=Path(str(ferplus)))
    images: list[np.ndarray] = []
    labels: list[int] = []
    sources: list[str] = []
    votes: list[np.ndarray] = []
    skipped = 0
    check_regular_file(path, lambda message: DatasetError(message, path=path), "FER2013 CSV")
    try:
        handle = path.open(newline="")
    except OSError as exc:
        raise DatasetError(f"cannot open FER2013 CSV {path}: {exc.strerror}", path=path) from None
    with handle:
        reader = csv.DictReader(handle)
        missing = {"emotion", "pixels"} - set(reader.fieldnames or ())
        if missing:
            raise DatasetError(f"{path} lacks column(s) {sorted(missing)}; expected emotion,pixels,Usage", path=path)
        row_count = 0
        for line, row in enumerate(reader, start=2):
            row_count += 1
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
            if vote_rows is not None and line - 2 < len(vote_rows):
                row_votes = vote_rows[line - 2]
                votes.append(np.zeros(len(VOTE_COLUMNS), np.float32) if row_votes is None else row_votes)
    if not images:
        raise DatasetError(f"no {usage} rows in {path}", path=path)
    if vote_rows is not None and len(vote_rows) != row_count:
        raise DatasetError(
            f"{new_path} has {len(vote_rows)} rows but {path} has {row_count}: FER+ votes are matched by row, "
            "so both must be the complete original files",
            path=new_path,
        )
    vote_array = np.stack(votes) if vote_rows is not None else None
    return FaceDataset(np.stack(images), np.asarray(labels, dtype=np.int64), tuple(sources), skipped, vote_array)


def load_dataset(
    source: str | Path,
    split: str = "train",
    *,
    size: int = 48,
    skip_unreadable: bool = True,
    ferplus: str | Path | None = AUTO,
    labels_file: str | Path | None = None,
    color: str = "gray",
) -> FaceDataset:
    """Load an image folder, or a FER2013 CSV file (then ``split`` picks its rows), with FER+ votes
    when ``ferplus`` names them or (``AUTO``) they are found in their usual place. ``color="bgr"`` keeps
    an image folder's colour (a CSV is always grayscale)."""
    source = Path(source)
    if source.suffix.lower() == ".csv":
        return load_fer2013_csv(source, split, size=size, skip_unreadable=skip_unreadable, ferplus=ferplus)
    return load_image_folder(
        source, size=size, skip_unreadable=skip_unreadable, ferplus=ferplus, labels_file=labels_file, color=color
    )
