"""Build detectors by name, including the ``auto`` policy."""

from __future__ import annotations

import difflib
import math
import threading
import warnings
from collections.abc import Mapping
from typing import Any

from .._registry import DetectorSpec, resolve
from ..errors import EmolensWarning, InvalidOptionError, WeightsError
from . import DETECTORS
from ._base import Detector

__all__ = ["AUTO_PREFERENCE", "create_detector", "validate_options"]

_NULLABLE = {"max_side"}  # None: no downscaling

#: ``detector="auto"`` uses the first of these that can be built (weights cached or downloadable).
#: YuNet first: on emolens' detector benchmark it is as accurate as RetinaFace-MobileNet, with fewer false
#: positives, and several times faster on CPU (docs/detectors.md).
AUTO_PREFERENCE: tuple[str, ...] = ("yunet", "retinaface-mobilenet", "haar")

_auto_choice: str | None = None
_auto_lock = threading.Lock()


def create_detector(detector: str | Detector | None, *, device: str = "cpu", **options: Any) -> Detector | None:
    """A detector instance for a registered name, ``"auto"``, ``None``/``"none"`` or an instance.

    ``options`` go to the detector's builder (e.g. ``max_side=320``, which every built-in detector takes) and
    must be options it declares (:class:`InvalidOptionError` otherwise, naming the valid ones). For
    ``"auto"``, an option any candidate declares is accepted and given to those that declare it.
    """
    if detector is None or detector == "none":
        if options:
            raise InvalidOptionError("detector options given, but detection is off (detector=None)", option="detector")
        return None
    if not isinstance(detector, str):
        if not callable(getattr(detector, "detect", None)):
            raise InvalidOptionError(
                f"detector must be a registered name, 'auto', None or an object with a detect(image) method; got "
                f"{type(detector).__name__} {detector!r:.60}",
                option="detector",
            )
        return detector
    if detector == "auto":
        for name in AUTO_PREFERENCE:
            validate_options(DETECTORS.get(name), options, partial=True)
        known = {key for name in AUTO_PREFERENCE for key in DETECTORS.get(name).options}
        unknown = sorted(set(options) - known)
        if unknown:
            raise _unknown_options(unknown, sorted(known), "auto")
        return _create_auto(device, options)
    spec = DETECTORS.get(detector)
    validated = validate_options(spec, options)
    built: Detector = resolve(spec.builder)(spec, device=device, **{**spec.options, **validated})
    return built


def _unknown_options(unknown: list[str], known: list[str], name: str) -> InvalidOptionError:
    close = [m for key in unknown for m in difflib.get_close_matches(key, known, n=1, cutoff=0.6)]
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return InvalidOptionError(
        f"unknown detector option(s) {', '.join(map(repr, unknown))} for {name!r}.{hint} "
        f"It accepts: {', '.join(known) or 'no options'}.",
        option=unknown[0],
    )


def validate_options(spec: DetectorSpec, options: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """``options`` checked against the options ``spec`` declares: known names, the default's type, sane values.

    With ``partial=True`` (for ``"auto"``) options the spec does not declare are dropped instead of refused.
    """
    checked: dict[str, Any] = {}
    unknown = [key for key in options if key not in spec.options]
    if unknown and not partial:
        raise _unknown_options(unknown, sorted(spec.options), spec.name)
    for key, value in options.items():
        if key not in spec.options:
            continue
        default = spec.options[key]
        if value is None and key in _NULLABLE:
            checked[key] = value
            continue
        expected = type(default)
        ok = isinstance(value, expected) and not (isinstance(value, bool) and expected is not bool)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            ok, value = True, float(value)
        if not ok:
            raise InvalidOptionError(
                f"detector option {key!r} of {spec.name!r} must be {expected.__name__} (like its default "
                f"{default!r}), got {type(value).__name__} {value!r:.40}",
                option=key,
            )
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            bad = not math.isfinite(value) or value < 0 or (key.endswith("threshold") and value > 1)
            bad = (
                bad
                or (key == "scale_factor" and value <= 1)
                or (key in ("max_side", "min_size", "top_k") and value < 1)
            )
            if bad:
                raise InvalidOptionError(
                    f"detector option {key!r} of {spec.name!r} is out of range: {value!r}", option=key
                )
            if key == "upsample" and value > _MAX_UPSAMPLE:  # dlib: each step doubles both sides of the image
                raise InvalidOptionError(
                    f"detector option 'upsample' of {spec.name!r} is {value!r}; at most {_MAX_UPSAMPLE}: each step "
                    "doubles the image's sides (4x the time and memory; 3 took 8.6 s and 0.8 GB on a 1200x630 "
                    "photo); for smaller faces raise max_side instead",
                    option=key,
                )
        checked[key] = value
    return checked


#: dlib's ``upsample``: 2 already runs its detector on 16x the pixels.
_MAX_UPSAMPLE = 2


def _create_auto(device: str, options: dict[str, Any]) -> Detector:
    """The most accurate detector available; the choice is made once per process."""
    global _auto_choice
    with _auto_lock:
        if _auto_choice is None:
            unavailable: list[str] = []
            for name in AUTO_PREFERENCE:
                try:
                    own = {k: v for k, v in options.items() if k in DETECTORS.get(name).options}
                    built = create_detector(name, device=device, **own)
                except WeightsError as exc:
                    unavailable.append(f"{name} ({type(exc).__name__}: {exc.filename})")
                    continue
                _auto_choice = name
                if unavailable:
                    from ..weights import is_offline

                    fix = (
                        "EMOLENS_OFFLINE is set: copy the weights into the cache (`emolens download` on a machine "
                        "with network access) or unset it"
                        if is_offline()
                        else f"Run `emolens download {AUTO_PREFERENCE[0]}` or set EMOLENS_MIRROR to fix"
                    )
                    warnings.warn(
                        f"emolens: using the {name!r} detector; weights unavailable for {', '.join(unavailable)}. "
                        f"{fix}.",
                        EmolensWarning,
                        stacklevel=5,
                    )
                assert built is not None
                return built
            raise AssertionError("the last detector in AUTO_PREFERENCE must need no weights")
        own = {k: v for k, v in options.items() if k in DETECTORS.get(_auto_choice).options}
        chosen = create_detector(_auto_choice, device=device, **own)
        assert chosen is not None
        return chosen


def reset_auto_choice() -> None:
    """Forget the ``auto`` decision (for tests, or after downloading weights)."""
    global _auto_choice
    with _auto_lock:
        _auto_choice = None
