"""The emolens exception tree.

Every error emolens raises on purpose derives from :class:`EmolensError` and also from the
builtin exception a Python user would expect, so ``except ValueError`` keeps working::

    EmolensError
    ├── InvalidImageError (ValueError)            .source
    │   └── ImageTooLargeError                    over the pixel or byte limit
    ├── UnknownNameError (KeyError)               .kind, .name, .suggestions
    ├── InvalidOptionError (ValueError)           .option: a bad argument (device, detector option, video setting)
    ├── MissingDependencyError (ImportError)      .package, .extra
    ├── InvalidVideoError (ValueError)            .source
    ├── DatasetError (ValueError)                 .path
    ├── WeightsError (RuntimeError)               .filename
    │   ├── WeightsUnavailableError               offline and not cached, or a local file missing
    │   ├── WeightsDownloadError (ConnectionError) .url
    │   └── WeightsIntegrityError                 .expected, .actual (sha256)
    └── InternalError (RuntimeError)              not the input's fault: a worker died, a component misbehaved
        └── ModelError                            .component: a model or detector failed while running

Messages always say what to do next. The errors above ``InternalError`` are about what was asked
(``emolens serve`` answers 4xx, or 503 for weights; the CLI exits 2); an ``InternalError`` is emolens'
or a plugged-in component's (HTTP 500, exit code 70).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

__all__ = [
    "DatasetError",
    "EmolensError",
    "EmolensWarning",
    "ImageTooLargeError",
    "InternalError",
    "InvalidImageError",
    "InvalidOptionError",
    "InvalidVideoError",
    "MissingDependencyError",
    "ModelError",
    "UnknownNameError",
    "WeightsDownloadError",
    "WeightsError",
    "WeightsIntegrityError",
    "WeightsUnavailableError",
]


class EmolensWarning(UserWarning):
    """Warnings emitted by emolens (e.g. falling back to a less accurate detector)."""


class EmolensError(Exception):
    """Base class of every error raised by emolens."""

    def __str__(self) -> str:
        # The message alone: KeyError would quote it, OSError would format errno/filename.
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> tuple[object, ...]:
        # Pickled as message and attributes, whatever the subclass's __init__ takes: an error raised in a
        # worker process (emolens batch, Ray) reaches the parent as itself.
        state = dict(self.__dict__)
        if isinstance(self, OSError):  # OSError keeps `filename` in a slot of its own, not in __dict__
            state["filename"] = self.filename
        return (_rebuild, (type(self), self.args, state))


def _rebuild(cls: type[EmolensError], args: tuple[object, ...], state: dict[str, object]) -> EmolensError:
    # Made by the builtin base's __new__ that Python accepts for ``cls`` (OSError's for WeightsDownloadError,
    # whose MRO lists RuntimeError first), without calling the subclass's __init__.
    for base in cls.__mro__:
        if base.__module__ == "builtins":
            try:
                error: EmolensError = base.__new__(cls)  # type: ignore[call-overload]
                break
            except TypeError:
                continue
    error.args = args
    for name, value in state.items():
        setattr(error, name, value)
    return error


class InvalidImageError(EmolensError, ValueError):
    """The input cannot be read as an image (missing or corrupt file, wrong dtype, shape or type)."""

    def __init__(self, message: str, *, source: object = None) -> None:
        super().__init__(message)
        self.source = source


class ImageTooLargeError(InvalidImageError):
    """The image is larger than the pixel limit (checked from its header, before decoding) or the byte limit."""


class UnknownNameError(EmolensError, KeyError):
    """No detector or model is registered under this name (or no optimizer, schedule ... has it).

    ``suggestions`` defaults to the known names closest in spelling to ``name`` (at most three).
    """

    def __init__(self, kind: str, name: str, known: Sequence[str], suggestions: Sequence[str] | None = None) -> None:
        self.kind = kind
        self.name = name
        self.known = tuple(known)
        if suggestions is None:
            suggestions = difflib.get_close_matches(name[:200], self.known, n=3, cutoff=0.5)
        self.suggestions = tuple(suggestions)
        hint = f" Did you mean {', '.join(repr(s) for s in self.suggestions)}?" if self.suggestions else ""
        shown = repr(name) if len(name) <= 80 else f"{name[:60]!r}... ({len(name):,} characters)"  # never echo a page
        super().__init__(f"unknown {kind} {shown}.{hint} Known {kind}s: {', '.join(self.known)}.")


class InvalidOptionError(EmolensError, ValueError):
    """An argument has a wrong value or type: an unknown device or detector option, a video setting out of range.

    The message names the valid values; ``option`` is the argument's name.
    """

    def __init__(self, message: str, *, option: str) -> None:
        super().__init__(message)
        self.option = option


class MissingDependencyError(EmolensError, ImportError):
    """An optional package is needed for this feature and is not installed."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(f"{feature} needs the optional package {package!r}: pip install 'emolens[{extra}]'")


class InvalidVideoError(EmolensError, ValueError):
    """A video file or camera cannot be opened or read."""

    def __init__(self, message: str, *, source: object = None) -> None:
        super().__init__(message)
        self.source = source


class DatasetError(EmolensError, ValueError):
    """A training or evaluation dataset is missing or malformed."""

    def __init__(self, message: str, *, path: object = None) -> None:
        super().__init__(message)
        self.path = path


class WeightsError(EmolensError, RuntimeError):
    """A weights file could not be provided."""

    def __init__(self, message: str, *, filename: str) -> None:
        super().__init__(message)
        self.filename = filename


class WeightsUnavailableError(WeightsError):
    """The weights are not here and cannot be downloaded (``EMOLENS_OFFLINE=1``, a missing local file)."""


class WeightsDownloadError(WeightsError, ConnectionError):
    """Every URL for a weights file failed (no network, server down, HTTP error)."""

    def __init__(self, message: str, *, filename: str, url: str) -> None:
        super().__init__(message, filename=filename)
        self.url = url


class WeightsIntegrityError(WeightsError):
    """A weights file does not have the expected SHA-256; it was not loaded."""

    def __init__(self, message: str, *, filename: str, expected: str, actual: str) -> None:
        super().__init__(message, filename=filename)
        self.expected = expected
        self.actual = actual


class InternalError(EmolensError, RuntimeError):
    """A failure that is not the input's fault (a worker process died, a component broke a contract)."""


class ModelError(InternalError):
    """A model or detector failed while running: a graph that will not load, non-finite or misshapen outputs,
    a detector that crashed or returned something other than detections. ``component`` names it."""

    def __init__(self, message: str, *, component: str) -> None:
        super().__init__(message)
        self.component = component
