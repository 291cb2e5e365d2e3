"""Build detectors by name, including the ``auto`` policy."""

from __future__ import annotations

import threading
import warnings
from typing import Any

from .._registry import resolve
from ..errors import EmolensWarning, WeightsError
from . import DETECTORS
from ._base import Detector

__all__ = ["AUTO_PREFERENCE", "create_detector"]

#: ``detector="auto"`` uses the first of these that can be built (weights cached or downloadable).
#: YuNet first: on emolens' detector benchmark it is as accurate as RetinaFace-MobileNet, with fewer false
#: positives, and several times faster on CPU (docs/detectors.md).
AUTO_PREFERENCE: tuple[str, ...] = ("yunet", "retinaface-mobilenet", "haar")

_auto_choice: str | None = None
_auto_lock = threading.Lock()


def create_detector(detector: str | Detector | None, *, device: str = "cpu", **options: Any) -> Detector | None:
    """A detector instance for a registered name, ``"auto"``, ``None``/``"none"`` or an instance.

    ``options`` go to the detector's builder (e.g. ``max_side=320`` for YuNet and RetinaFace);
    built-in detectors ignore options they do not know, so one set of options can serve ``"auto"``.
    """
    if detector is None or detector == "none":
        return None
    if not isinstance(detector, str):
        return detector
    if detector == "auto":
        return _create_auto(device, options)
    spec = DETECTORS.get(detector)
    built: Detector = resolve(spec.builder)(spec, device=device, **{**spec.options, **options})
    return built


def _create_auto(device: str, options: dict[str, Any]) -> Detector:
    """The most accurate detector available; the choice is made once per process."""
    global _auto_choice
    with _auto_lock:
        if _auto_choice is None:
            unavailable: list[str] = []
            for name in AUTO_PREFERENCE:
                try:
                    built = create_detector(name, device=device, **options)
                except WeightsError as exc:
                    unavailable.append(f"{name} ({type(exc).__name__}: {exc.filename})")
                    continue
                _auto_choice = name
                if unavailable:
                    warnings.warn(
                        f"emolens: using the {name!r} detector; weights unavailable for {', '.join(unavailable)}. "
                        f"Run `emolens download {AUTO_PREFERENCE[0]}` or set EMOLENS_MIRROR to fix.",
                        EmolensWarning,
                        stacklevel=5,
                    )
                assert built is not None
                return built
            raise AssertionError("the last detector in AUTO_PREFERENCE must need no weights")
        chosen = create_detector(_auto_choice, device=device, **options)
        assert chosen is not None
        return chosen


def reset_auto_choice() -> None:
    """Forget the ``auto`` decision (for tests, or after downloading weights)."""
    global _auto_choice
    with _auto_lock:
        _auto_choice = None
