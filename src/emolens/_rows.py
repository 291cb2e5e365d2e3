"""Results as table rows: one row per face, or one row for an input with no face or an error.

This is the one home of the tabular schema used by :meth:`AnalysisResult.to_dataframe`,
:func:`emolens.to_dataframe`, ``emolens batch`` (Parquet, CSV, JSON lines) and both batch engines.
The columns are fixed for a given label set, whatever the input: ``prob_<label>`` columns follow the
model's labels in order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ._limits import RAISE_MAX_PIXELS

if TYPE_CHECKING:
    from .types import AnalysisResult

__all__ = ["Row", "columns", "error_row", "file_column", "probability_column", "result_rows", "to_dataframe"]

Row = dict[str, Any]

#: A batch table is read by users of emolens.batch and of the emolens command alike: its advice names both.
_RAISE_MAX_PIXELS_IN_ROWS = "raise max_pixels (--max-megapixels of emolens batch) if you trust the input"

#: (name, type) of the columns before and after the probabilities; types: str, int, float, bool.
LEADING: tuple[tuple[str, str], ...] = (
    ("file", "str"),
    ("frame", "int"),
    ("time_s", "float"),
    ("face", "int"),
    ("x", "int"),
    ("y", "int"),
    ("width", "int"),
    ("height", "int"),
    ("score", "float"),
    ("fallback", "bool"),
    ("label", "str"),
)
TRAILING: tuple[tuple[str, str], ...] = (
    ("valence", "float"),
    ("arousal", "float"),
    ("detector", "str"),
    ("model", "str"),
    ("detector_id", "str"),
    ("model_id", "str"),
    ("error_type", "str"),
    ("error_message", "str"),
)


def probability_column(label: str) -> str:
    return f"prob_{label}"


def column_types(labels: Sequence[str]) -> list[tuple[str, str]]:
    """Every column with its type, in order, for a model with ``labels``."""
    return [*LEADING, *((probability_column(label), "float") for label in labels), *TRAILING]


def columns(labels: Sequence[str]) -> list[str]:
    """The column names, in order, for a model with ``labels``."""
    return [name for name, _ in column_types(labels)]


def _empty(labels: Sequence[str]) -> Row:
    return dict.fromkeys(columns(labels))


def file_column(path: str) -> str:
    """A path as the ``file`` column holds it: unchanged, or, for a name that is not valid UTF-8 (bytes a
    file system allows, which Python holds as lone surrogates), with those bytes as ``\\xNN`` escapes, so CSV,
    JSON lines and Parquet can all hold it and a resumed run recognises it. (A valid name that spells such an
    escape itself, a backslash then ``xe9``, reads the same: vanishingly rare, and said in docs/batch.md.)"""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        pass
    try:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that no file name's byte became
        return path.encode("utf-8", "backslashreplace").decode("utf-8")


def result_rows(
    result: AnalysisResult,
    labels: Sequence[str],
    *,
    file: str | None = None,
    frame: int | None = None,
    time_s: float | None = None,
) -> list[Row]:
    """One row per face of ``result``; one row with no face columns when it has no face."""
    source = result.source if file is None else file
    base = _empty(labels)
    base.update(
        file=None if source is None else file_column(source),
        frame=frame,
        time_s=time_s,
        detector=result.detector,
        model=result.model,
        detector_id=result.detector_id or None,
        model_id=result.model_id or None,
    )
    if not result.faces:
        return [base]
    rows = []
    for index, face in enumerate(result.faces):
        row = dict(base)
        row.update(
            face=index,
            x=face.box.x,
            y=face.box.y,
            width=face.box.width,
            height=face.box.height,
            score=float(face.score),
            fallback=face.fallback,
            label=face.label,
            valence=face.valence,
            arousal=face.arousal,
        )
        for label, probability in zip(face.labels, face.probabilities, strict=True):
            row[probability_column(label)] = float(probability)
        rows.append(row)
    return rows


def error_row(
    file: str,
    error: BaseException,
    labels: Sequence[str],
    *,
    detector: str | None = None,
    model: str | None = None,
    detector_id: str | None = None,
    model_id: str | None = None,
) -> Row:
    """The row of an input that failed: its file, the error's type and message, and who would have answered."""
    row = _empty(labels)
    row.update(
        file=file_column(file),
        detector=detector,
        model=model,
        detector_id=detector_id,
        model_id=model_id,
        error_type=type(error).__name__,
        error_message=str(error).replace(RAISE_MAX_PIXELS, _RAISE_MAX_PIXELS_IN_ROWS)[:2000],
    )
    return row


def to_dataframe(results: AnalysisResult | Iterable[AnalysisResult]) -> Any:
    """A pandas DataFrame with one row per face (see the module docstring for the columns).

    Accepts one :class:`AnalysisResult` or several (``analyze_batch``'s list); needs pandas.
    """
    from ._optional import require
    from .types import AnalysisResult

    pandas = require("pandas", extra="batch", feature="to_dataframe()")
    from .errors import InvalidOptionError

    try:
        items = [results] if isinstance(results, AnalysisResult) else list(results)
    except TypeError:
        items = [results]  # type: ignore[list-item]  # refused just below, by name
    strays = [type(item).__name__ for item in items if not isinstance(item, AnalysisResult)]
    if strays:
        raise InvalidOptionError(
            f"to_dataframe takes AnalysisResult objects (what analyze() returns), got {strays[0]}", option="results"
        )
    labels: tuple[str, ...] = ()
    for item in items:
        for face in item.faces:
            if labels and face.labels != labels:
                raise InvalidOptionError(
                    "these results come from models with different labels; make one table per model", option="results"
                )
            labels = face.labels
    if not labels:
        from .labels import FER2013

        labels = FER2013.labels
    rows = [row for item in items for row in result_rows(item, labels)]
    return pandas.DataFrame(rows, columns=columns(labels))
