"""Where a batch run's rows go: parts written atomically while it runs, one output file at the end.

``--out faces.parquet`` keeps its parts in ``faces.parquet.parts/`` (JSON lines from the local
engine, Parquet from Ray's writer). Each part appears by an atomic rename, so a killed run loses at
most the parts in flight; the next run with the same ``--out`` reads which files are done from the
output and the parts and skips them. At the end the rows are sorted (file, frame, face) and written
to the output by an atomic rename, then the parts are removed. Identical inputs therefore give an
identical file whichever engine, worker count or number of resumptions produced it.

An existing output is resumed only when it is a table of the same columns (or, for a submission, a
``file,label`` file); anything else is refused unless the run overwrites it. One run at a time writes
an output: a second gets an error instead of doubling the rows (an ``flock`` on the hidden
``.<name>.lock`` beside it, which holds the pid of the run that has it and nothing else).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from .._optional import require
from .._rows import Row, column_types, columns
from ..errors import InvalidOptionError

__all__ = ["FORMATS", "Store", "mixed_results"]

#: Output formats by suffix; ``submission`` (``file,label``) is chosen with ``format="submission"``.
FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}


class Store:
    """The output of one batch run (see the module docstring)."""

    def __init__(
        self,
        out: str | os.PathLike[str],
        labels: Sequence[str],
        *,
        model: str,
        model_id: str | None = None,
        format: str = "table",
    ) -> None:
        self.out = Path(out)
        suffix = self.out.suffix.lower()
        if format not in ("table", "submission"):
            raise InvalidOptionError(f"format must be 'table' or 'submission', got {format!r}", option="format")
        if format == "table" and suffix not in FORMATS:
            raise InvalidOptionError(
                f"--out {out}: name a .parquet, .csv or .jsonl file (the suffix picks the format)", option="out"
            )
        if format == "submission" and suffix != ".csv":
            raise InvalidOptionError(f"--out {out}: a submission is a .csv file", option="out")
        if self.out.is_dir():
            raise InvalidOptionError(f"--out {out} is a folder; name a file", option="out")
        if not self.out.parent.is_dir():
            raise InvalidOptionError(f"--out {out}: folder {self.out.parent} does not exist", option="out")
        self.format = format
        self.kind = FORMATS.get(suffix, "csv")
        self.labels = tuple(labels)
        self.model = model
        self.model_id = model_id  # None when not known before the weights are read (a run folder)
        #: the ``detector_id`` values of the rows already there (known after :meth:`done`; older tables: none)
        self.detector_ids: set[str] = set()
        self.columns = columns(self.labels)
        self.parts = self.out.with_name(self.out.name + ".parts")
        self._lock: IO[str] | None = None

    # --- one run at a time ------------------------------------------------------------------------
    def acquire(self) -> None:
        """Hold the output for this run; InvalidOptionError if another run is writing it."""
        try:
            import fcntl
        except ImportError:  # Windows: not guarded
            return
        path = self.out.with_name(f".{self.out.name}.lock")
        try:
            handle = path.open("a+", encoding="utf-8")
        except OSError as exc:
            raise InvalidOptionError(
                f"--out {self.out}: cannot write in {self.out.parent} ({exc.strerror or exc})", option="out"
            ) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read(32).strip()
            handle.close()
            raise InvalidOptionError(
                f"another emolens batch run{f' (pid {holder})' if holder.isdigit() else ''} is writing {self.out}: "
                "wait for it to finish, or choose another --out",
                option="out",
            ) from None
        except OSError:  # a file system without locks (some network mounts): run unguarded
            handle.close()
            return
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock = handle

    def release(self) -> None:
        """Let the next run write the output (closing the lock file releases its flock)."""
        if self._lock is not None:
            with contextlib.suppress(OSError):
                self._lock.seek(0)
                self._lock.truncate()
            self._lock.close()
            self._lock = None

    # --- state ------------------------------------------------------------------------------------
    def clear(self) -> None:
        """Forget earlier runs (``--overwrite``)."""
        shutil.rmtree(self.parts, ignore_errors=True)
        self.out.unlink(missing_ok=True)

    def done(self) -> set[str]:
        """Files already in the output or in a finished part."""
        return {row["file"] for row in self._earlier_rows()}

    def _earlier_rows(self) -> list[Row]:
        if self.format == "submission" and self.out.exists():
            self._check_header(["file", "label"], "a submission (file,label)")
        rows = self._read_output() if self.format == "table" and self.out.exists() else []
        for part in self._part_files():
            rows.extend(self._read_part(part))
        for row in rows:
            if self.model_id and row.get("model_id"):  # which weights wrote them decides, whatever the name
                if row["model_id"] != self.model_id:
                    raise self._mixed(
                        f"{row['model_id']!r}, not {self.model_id!r} (another --precision, or emolens was upgraded?)"
                    )
            elif row.get("model") not in (None, self.model):
                raise self._mixed(f"model {row['model']!r}, not {self.model!r}")
            if row.get("detector_id"):  # older tables have none
                self.detector_ids.add(str(row["detector_id"]))
        return rows

    def _mixed(self, what: str) -> InvalidOptionError:
        return mixed_results(
            str(self.out), what, "the weights that wrote them (the same --precision, or --model NAME@VERSION)"
        )

    def part_rows(self) -> list[Row]:
        """Rows in finished parts (not yet merged into the output)."""
        return [row for part in self._part_files() for row in self._read_part(part)]

    def _part_files(self) -> list[Path]:
        if not self.parts.is_dir():
            return []
        return sorted(p for p in self.parts.iterdir() if p.suffix in (".jsonl", ".parquet") and p.is_file())

    # --- writing ----------------------------------------------------------------------------------
    def write_part(self, rows: Sequence[Row]) -> None:
        """Add rows as one new part (atomic: a reader sees all of it or nothing)."""
        if not rows:
            return
        self.parts.mkdir(exist_ok=True)
        name = f"part-{uuid.uuid4().hex}.jsonl"
        temporary = self.parts / f".{name}.tmp"
        with temporary.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.parts / name)

    def finish(self) -> list[Row]:
        """Write every row, sorted, to the output (atomically) and remove the parts; returns the rows."""
        rows = sorted(self._earlier_rows(), key=_order)
        temporary = self.out.with_name(f".{self.out.name}.{uuid.uuid4().hex}.tmp")
        try:
            if self.format == "submission":
                _write_submission(temporary, rows)
            else:
                _WRITERS[self.kind](temporary, rows, column_types(self.labels))
            os.replace(temporary, self.out)
        finally:
            temporary.unlink(missing_ok=True)
        if self.format == "table":  # a submission keeps its full rows in the parts, for the next run
            shutil.rmtree(self.parts, ignore_errors=True)
        return rows

    # --- reading ----------------------------------------------------------------------------------
    def _read_output(self) -> list[Row]:
        self._check_header(list(self.columns), f"a table of this model's labels ({', '.join(self.labels)})")
        return _READERS[self.kind](self.out, column_types(self.labels))

    def _check_header(self, expected: list[str], what: str) -> None:
        """Refuse to resume (and so to replace) an existing output that this kind of run did not write.

        A table missing only columns added since (``detector_id``, ``model_id``) is an older emolens' and resumes.
        """
        # None: not a CSV, JSON lines or Parquet file at all (pyarrow's ArrowInvalid is a ValueError, a JSON line
        # that is a number a TypeError); a missing pyarrow (MissingDependencyError, an ImportError) is not caught,
        # so it is said as such, never as "pass --overwrite"
        try:
            found = _HEADERS[self.kind](self.out)
        except (OSError, ValueError, TypeError, csv.Error):
            found = None
        core = {"file", *(name for name in expected if name.startswith("prob_"))}
        if found is not None and (
            found == expected
            or (not found and self.kind != "parquet")  # an empty file
            or (self.format == "table" and core <= set(found) <= set(expected))
        ):
            return
        raise InvalidOptionError(
            f"{self.out} exists and is not {what} from emolens batch: pass --overwrite to replace it, or choose "
            "another --out",
            option="out",
        )

    def _read_part(self, part: Path) -> list[Row]:
        try:
            if part.suffix == ".jsonl":
                return _read_jsonl(part, column_types(self.labels))
            return _read_parquet(part, column_types(self.labels))
        except Exception:  # a part cut short by a killed run (Ray writes in place): its inputs are redone
            part.unlink(missing_ok=True)
            return []


def mixed_results(out: str, what: str, same: str) -> InvalidOptionError:
    """The refusal to add a run's rows to an output that holds results of ``what`` (other weights, another
    detector); ``same`` says what to run to resume it instead."""
    return InvalidOptionError(
        f"{out} holds results of {what}: pass --overwrite to replace them, choose another --out, or run {same}",
        option="out",
    )


def _order(row: Row) -> tuple[str, int, int]:
    frame = -1 if row.get("frame") is None else int(row["frame"])
    face = -1 if row.get("face") is None else int(row["face"])
    return (str(row["file"]), frame, face)


def _coerce(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "str":
        return str(value)
    if value == "":
        return None
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "bool":
        return value if isinstance(value, bool) else str(value).lower() == "true"
    return value


def _read_jsonl(path: Path, types: Sequence[tuple[str, str]]) -> list[Row]:
    with path.open(encoding="utf-8") as handle:
        return [{name: _coerce(row.get(name), kind) for name, kind in types} for row in map(json.loads, handle)]


def _write_jsonl(path: Path, rows: Iterable[Row], types: Sequence[tuple[str, str]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps({name: row.get(name) for name, _ in types}, ensure_ascii=False) + "\n")


def _read_csv(path: Path, types: Sequence[tuple[str, str]]) -> list[Row]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        out = []
        for row in reader:
            values = {name: _coerce(row.get(name), kind) for name, kind in types}
            for name, kind in types:  # CSV cannot tell an empty string from a missing value
                if kind == "str" and values[name] == "":
                    values[name] = None
            out.append(values)
        return out


def _write_csv(path: Path, rows: Iterable[Row], types: Sequence[tuple[str, str]]) -> None:
    names = [name for name, _ in types]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=names, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def arrow_schema(types: Sequence[tuple[str, str]]) -> Any:
    """The pyarrow schema of the rows (the same for every part and engine)."""
    pyarrow = require("pyarrow", extra="batch", feature="Parquet output")
    arrow = {"str": pyarrow.string(), "int": pyarrow.int64(), "float": pyarrow.float64(), "bool": pyarrow.bool_()}
    return pyarrow.schema([(name, arrow[kind]) for name, kind in types])


def _read_parquet(path: Path, types: Sequence[tuple[str, str]]) -> list[Row]:
    parquet = require("pyarrow.parquet", extra="batch", feature="Parquet output", package="pyarrow")
    rows: list[Row] = parquet.read_table(path).to_pylist()
    return [{name: _coerce(row.get(name), kind) for name, kind in types} for row in rows]


def _write_parquet(path: Path, rows: Sequence[Row], types: Sequence[tuple[str, str]]) -> None:
    pyarrow = require("pyarrow", extra="batch", feature="Parquet output")
    parquet = require("pyarrow.parquet", extra="batch", feature="Parquet output", package="pyarrow")
    names = [name for name, _ in types]
    table = pyarrow.Table.from_pylist([{n: row.get(n) for n in names} for row in rows], schema=arrow_schema(types))
    parquet.write_table(table, path)


def _write_submission(path: Path, rows: Sequence[Row]) -> None:
    """``file,label``: one line per input, the label of its largest face (empty for no face or an error)."""
    labels: dict[str, str] = {}
    for row in rows:  # sorted by (file, frame, face): the first face 0 is the largest face of the first frame
        labels.setdefault(row["file"], "")
        if row.get("face") == 0 and not labels[row["file"]]:
            labels[row["file"]] = row.get("label") or ""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label"])
        writer.writerows(sorted(labels.items()))


def _csv_header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle), [])


def _jsonl_header(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as handle:
        line = handle.readline(1 << 20)
    return [str(name) for name in json.loads(line)] if line.strip() else []


def _parquet_header(path: Path) -> list[str]:
    parquet = require("pyarrow.parquet", extra="batch", feature="Parquet output", package="pyarrow")
    return list(parquet.read_schema(path).names)


_HEADERS = {"parquet": _parquet_header, "csv": _csv_header, "jsonl": _jsonl_header}
_READERS = {"parquet": _read_parquet, "csv": _read_csv, "jsonl": _read_jsonl}
_WRITERS = {"parquet": _write_parquet, "csv": _write_csv, "jsonl": _write_jsonl}
