"""Turn what a user names (files, folders, globs, lists of paths) into the inputs of a batch run."""

from __future__ import annotations

import csv
import glob
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .._header import IMAGE_SUFFIXES
from ..errors import InvalidOptionError

__all__ = ["IMAGE_SUFFIXES", "LIST_SUFFIXES", "VIDEO_SUFFIXES", "BatchInput", "expand_inputs"]

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"})
#: Files whose lines or ``path``/``file`` column name the inputs (not analysed themselves).
LIST_SUFFIXES = frozenset({".txt", ".csv", ".parquet"})
_PATH_COLUMNS = ("path", "file", "filename", "image")


@dataclass(frozen=True, slots=True)
class BatchInput:
    """One thing to analyse: an image (one result) or a video (one result per analysed frame).

    ``path`` is as it will appear in the output's ``file`` column (a name that is not valid UTF-8 there with
    its bytes escaped: ``emolens._rows.file_column``).
    """

    path: str
    video: bool = False


def expand_inputs(items: Iterable[str | os.PathLike[str]]) -> list[BatchInput]:
    """Every input, in a stable order, without duplicates.

    A folder gives its images and videos (recursively, sorted); a glob its matches; a ``.txt``
    (one path per line), ``.csv`` or ``.parquet`` (a ``path`` or ``file`` column) the paths it lists,
    relative to its own folder. Anything else is an input as it is: a missing or unreadable file
    becomes an error row, never a silent omission. A folder or glob that matches nothing is an error, and so
    is a missing path written as a folder (``photos/``).
    """
    seen: set[str] = set()
    found: list[BatchInput] = []
    for item in items:
        for path in _expand_one(str(item)):
            if path not in seen:
                seen.add(path)
                found.append(BatchInput(path, Path(path).suffix.lower() in VIDEO_SUFFIXES))
    return found


def _expand_one(text: str) -> Iterator[str]:
    path = Path(text)
    if not text:  # Path("") is the current folder, which nobody means by an empty string
        raise InvalidOptionError(
            f"an empty input ({text!r}) names no file; name a file, folder or glob", option="inputs"
        )
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
        if not files:
            raise InvalidOptionError(f"folder {text} has no images or videos", option="inputs")
        yield from (str(p) for p in files if p.is_file())
    elif any(ch in text for ch in "*?[") and not path.exists():
        matches = sorted(glob.glob(text, recursive=True))
        if not matches:
            raise InvalidOptionError(f"no files match {text!r}", option="inputs")
        yield from (m for m in matches if Path(m).is_file())
    elif path.suffix.lower() in LIST_SUFFIXES and path.is_file():
        yield from _listed(path)
    elif text.endswith(("/", os.sep)) and not path.exists():  # meant as a folder: as one with nothing in it
        raise InvalidOptionError(f"folder {text} does not exist", option="inputs")
    else:
        yield text


def _listed(path: Path) -> Iterator[str]:
    """The paths a list file names, relative to its folder."""
    suffix = path.suffix.lower()
    if suffix == ".txt":
        entries = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        entries = [e for e in entries if e and not e.startswith("#")]
    elif suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            column = _path_column(reader.fieldnames or [], path)
            entries = [row[column] for row in reader if row.get(column)]
    else:
        from .._optional import require

        parquet = require(
            "pyarrow.parquet", extra="batch", feature="reading a Parquet list of inputs", package="pyarrow"
        )
        table = parquet.read_table(path)
        column = _path_column(table.column_names, path)
        entries = [str(v) for v in table.column(column).to_pylist() if v]
    for entry in entries:
        listed = Path(entry)
        yield str(listed if listed.is_absolute() else path.parent / listed)


def _path_column(names: Iterable[str], path: Path) -> str:
    names = list(names)
    for candidate in _PATH_COLUMNS:
        if candidate in names:
            return candidate
    raise InvalidOptionError(
        f"{path} has no column named {' or '.join(_PATH_COLUMNS)}; its columns are {', '.join(names) or 'none'}",
        option="inputs",
    )
