"""argparse value types: a bad value is a usage error that names what was expected, never a traceback."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import re
import time
from typing import Any

__all__ = ["deadline", "fraction", "json_object", "non_negative", "positive_int", "positive_number", "unit_interval"]


def positive_int(text: str) -> int:
    """An integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def non_negative(text: str) -> float:
    """A finite number >= 0 (0 usually turns the option off)."""
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value:g}")
    return value


def positive_number(text: str) -> float:
    """A finite number > 0."""
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {value:g}")
    return value


def unit_interval(text: str) -> float:
    """A number in [0, 1)."""
    value = _finite(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1]."""
    value = _finite(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, got {value}")
    return value


def json_object(text: str) -> dict[str, Any]:
    """A JSON object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc.msg}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"widths\": [16, 32]}}', got {text!r}")
    return value


def deadline(text: str) -> float:
    """A deadline as ``time.time()``: a duration from now (``90m``, ``2h``, ``1h30m``) or a clock time (``17:45``)."""
    duration = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*", text)
    if duration and any(duration.groups()):
        hours, minutes = (float(g) if g else 0.0 for g in duration.groups())
        return time.time() + 3600 * hours + 60 * minutes
    clock = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", text)
    if clock and int(clock[1]) < 24 and int(clock[2]) < 60:
        now = dt.datetime.now()
        at = now.replace(hour=int(clock[1]), minute=int(clock[2]), second=0, microsecond=0)
        return (at if at > now else at + dt.timedelta(days=1)).timestamp()
    raise argparse.ArgumentTypeError(
        f"expected a duration such as 90m, 2h or 1h30m, or a time such as 17:45; got {text!r}"
    )
