"""Validation of public arguments on entry: a wrong type or value is an InvalidOptionError that names it.

Checked where the argument enters (``Analyzer``, ``analyze()``, ``load_image()`` ...), so a bad value
fails at once with a message saying what is expected, instead of deep inside OpenCV or torch, or
only when a face happens to be found.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

from .errors import InvalidOptionError

__all__ = ["check_bool", "check_file_stem", "check_int", "check_number", "check_options", "is_plain_file_name"]


def check_bool(name: str, value: object) -> bool:
    """``value`` if it is a bool (``"no"``, ``0`` or ``None`` are refused: they would read as true or false)."""
    if not isinstance(value, bool):
        raise InvalidOptionError(f"{name} must be True or False, got {type(value).__name__} {value!r:.40}", option=name)
    return value


def _whole(value: object) -> int | None:
    """``value`` as an int when it is a whole number (numpy integers, whole finite floats), else None (bools too)."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, numbers.Real)):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    number = float(value)
    return int(number) if math.isfinite(number) and number.is_integer() else None


def check_int(name: str, value: object, *, minimum: int = 0, maximum: int | None = None) -> int:
    """``value`` as an int in [minimum, maximum]; numpy integers and whole floats such as ``4e7`` are accepted,
    bools and text are not."""
    number = _whole(value)
    if number is None:
        raise InvalidOptionError(
            f"{name} must be a whole number, got {type(value).__name__} {value!r:.40}", option=name
        )
    if number < minimum or (maximum is not None and number > maximum):
        upper = f" and at most {maximum:,}" if maximum is not None else ""
        raise InvalidOptionError(f"{name} must be at least {minimum:,}{upper}, got {number:,}", option=name)
    return number


def check_number(name: str, value: object, *, minimum: float, maximum: float) -> float:
    """``value`` as a finite float in [minimum, maximum] (NaN, infinities, bools and text refused)."""
    number = float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else math.nan
    if not math.isfinite(number):
        raise InvalidOptionError(
            f"{name} must be a finite number, got {type(value).__name__} {value!r:.40}", option=name
        )
    if not minimum <= number <= maximum:
        raise InvalidOptionError(f"{name} must lie in [{minimum:g}, {maximum:g}], got {value!r}", option=name)
    return number


def check_options(name: str, value: object) -> dict[str, Any]:
    """A mapping of option names (str) to values, as a new dict (``None`` is no options)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise InvalidOptionError(
            f"{name} must be a mapping of option names (str) to values, such as {{'max_side': 640}}; got "
            f"{type(value).__name__} {value!r:.60}",
            option=name,
        )
    return dict(value)


def is_plain_file_name(value: str) -> bool:
    """One visible name for a file in a known folder: not empty, not hidden, no folder part (``../x``, ``a/b``,
    ``a\\b``), no NUL. The one rule for the names emolens writes and the weights files cards point to."""
    return bool(value.strip()) and not value.startswith(".") and not any(ch in value for ch in "/\\\0")


def check_file_stem(name: str, value: object) -> str:
    """``value`` as the stem of files written into a folder the caller chose (``<stem>.json``, ``<stem>.onnx``):
    one plain, visible name, never a path that leads elsewhere (``../x``, ``a/b``), empty or hidden."""
    if not isinstance(value, str):
        raise InvalidOptionError(f"{name} must be a string, got {type(value).__name__}", option=name)
    if not is_plain_file_name(value) or len(value) > 200:
        raise InvalidOptionError(
            f"{name} must be a plain file name stem such as 'my-model-v1' (no folder, not empty or hidden, at most "
            f"200 characters), got {value!r:.60}",
            option=name,
        )
    return value
