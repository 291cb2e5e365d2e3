"""Validation of public arguments on entry: a wrong type or value is an InvalidOptionError that names it.

Checked where the argument enters (``Analyzer``, ``analyze()``, ``load_image()`` ...), so a bad value
fails at once with a message saying what is expected, instead of deep inside OpenCV or torch, or
only when a face happens to be found.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .errors import InvalidOptionError

__all__ = ["check_bool", "check_int", "check_number", "check_options"]


def check_bool(name: str, value: object) -> bool:
    """``value`` if it is a bool (``"no"``, ``0`` or ``None`` are refused: they would read as true or false)."""
    if not isinstance(value, bool):
        raise InvalidOptionError(f"{name} must be True or False, got {type(value).__name__} {value!r:.40}", option=name)
    return value


def check_int(name: str, value: object, *, minimum: int = 0, maximum: int | None = None) -> int:
    """``value`` as an int in [minimum, maximum]; whole floats such as ``4e7`` are accepted, bools and text not."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    else:
        shown = f"{type(value).__name__} {value!r:.40}"
        raise InvalidOptionError(f"{name} must be a whole number, got {shown}", option=name)
    if number < minimum or (maximum is not None and number > maximum):
        upper = f" and at most {maximum:,}" if maximum is not None else ""
        raise InvalidOptionError(f"{name} must be at least {minimum:,}{upper}, got {number:,}", option=name)
    return number


def check_number(name: str, value: object, *, minimum: float, maximum: float) -> float:
    """``value`` as a finite float in [minimum, maximum] (NaN, infinities, bools and text refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidOptionError(
            f"{name} must be a finite number, got {type(value).__name__} {value!r:.40}", option=name
        )
    if not minimum <= value <= maximum:
        raise InvalidOptionError(f"{name} must lie in [{minimum:g}, {maximum:g}], got {value!r}", option=name)
    return float(value)


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
