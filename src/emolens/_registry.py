"""Name -> frozen spec registries for detectors and emotion models.

Specs name their implementation as an import string ("package.module:attribute"), so listing
and looking up never imports torch, OpenCV or an optional backend; only building does.
Third-party packages add specs with ``register_*`` or through an entry-point group.
"""

from __future__ import annotations

import importlib
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Generic, Protocol, TypeVar

from .errors import EmolensError, EmolensWarning, UnknownNameError

__all__ = ["DetectorSpec", "ModelSpec", "Registry", "WeightsFile", "resolve"]


@dataclass(frozen=True, slots=True)
class WeightsFile:
    """One weights file: where to get it and how to check it.

    ``urls`` are tried in order; ``bundled`` files ship inside the emolens wheel instead, and a
    ``path`` is a file on this machine (your own exported model), used in place and never cached.
    ``unpack="bz2"`` means the download is bz2-compressed: it is verified (``sha256``), then
    decompressed next to it (without the ``.bz2`` suffix) and verified again (``unpacked_sha256``).
    """

    name: str
    sha256: str
    urls: tuple[str, ...] = ()
    size: int | None = None
    bundled: bool = False
    license: str = ""
    unpack: str | None = None
    unpacked_sha256: str = ""
    path: str = ""


@dataclass(frozen=True, slots=True)
class DetectorSpec:
    """How to build a face detector.

    ``builder`` is a class/function or an import string; it is called as
    ``builder(spec, device=..., **options)`` and must return a :class:`emolens.Detector`.
    """

    name: str
    builder: str | Callable[..., Any]
    description: str
    weights: tuple[WeightsFile, ...] = ()
    extra: str | None = None
    requires: tuple[str, ...] = ()
    landmarks: bool = False
    license: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """How to build an emotion model.

    ``builder`` returns a ``torch.nn.Module`` mapping (N, 1, input_size, input_size) standardised
    grayscale crops to logits over ``labels``; it is called with ``**options``.
    """

    name: str
    builder: str | Callable[..., Any]
    description: str
    labels: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    input_size: int = 48
    weights: tuple[WeightsFile, ...] = ()
    license: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    tta: bool = False


class _Named(Protocol):
    @property
    def name(self) -> str: ...


SpecT = TypeVar("SpecT", bound=_Named)


def resolve(target: str | Callable[..., Any]) -> Callable[..., Any]:
    """Import ``"package.module:attribute"`` (or return a callable unchanged)."""
    if callable(target):
        return target
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    obj: Callable[..., Any] = getattr(module, attribute)
    return obj


class Registry(Generic[SpecT]):
    """A thread-safe mapping from names to specs, with close-match suggestions on a miss."""

    def __init__(self, kind: str, builtins: Iterable[SpecT], entry_point_group: str | None = None) -> None:
        self.kind = kind
        self._specs: dict[str, SpecT] = {spec.name: spec for spec in builtins}
        self._group = entry_point_group
        self._entry_points_loaded = entry_point_group is None
        self._lock = threading.RLock()

    def register(self, spec: SpecT, *, overwrite: bool = False) -> SpecT:
        """Add ``spec``; an existing name is an error unless ``overwrite=True``."""
        with self._lock:
            self._load_entry_points()
            if spec.name in self._specs and not overwrite:
                raise EmolensError(
                    f"a {self.kind} named {spec.name!r} is already registered; pass overwrite=True to replace it"
                )
            self._specs[spec.name] = spec
        return spec

    def unregister(self, name: str) -> None:
        """Remove a registered name (mainly for tests and plugins)."""
        with self._lock:
            self.get(name)
            del self._specs[name]

    def get(self, name: str) -> SpecT:
        """The spec registered as ``name``, or :class:`UnknownNameError` with suggestions."""
        with self._lock:
            self._load_entry_points()
            try:
                return self._specs[name]
            except KeyError:
                raise UnknownNameError(self.kind, str(name), sorted(self._specs)) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        with self._lock:
            self._load_entry_points()
            return sorted(self._specs)

    def specs(self) -> list[SpecT]:
        """Registered specs, sorted by name."""
        with self._lock:
            self._load_entry_points()
            return [self._specs[n] for n in sorted(self._specs)]

    def __contains__(self, name: object) -> bool:
        with self._lock:
            self._load_entry_points()
            return name in self._specs

    def __iter__(self) -> Iterator[str]:
        """Iterate over a snapshot of the sorted names, so registering meanwhile is safe."""
        return iter(self.names())

    def __len__(self) -> int:
        with self._lock:
            self._load_entry_points()
            return len(self._specs)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"

    def _load_entry_points(self) -> None:
        """Register specs advertised by installed packages, once, on first use."""
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        assert self._group is not None
        for ep in entry_points(group=self._group):
            try:
                spec = ep.load()
                name = spec.name
            except Exception as exc:  # a broken plugin must not break emolens
                warnings.warn(
                    f"emolens: ignoring {self.kind} entry point {ep.name!r}: {exc}", EmolensWarning, stacklevel=3
                )
                continue
            self._specs.setdefault(name, spec)
