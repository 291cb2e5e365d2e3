"""Name -> frozen spec registries for detectors and emotion models.

Specs name their implementation as an import string ("package.module:attribute"), so listing
and looking up never imports torch, OpenCV or an optional backend; only building does.
Third-party packages add specs with ``register_*`` or through an entry-point group.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Generic, Protocol, TypeVar

from .errors import EmolensError, EmolensWarning, InvalidOptionError, ModelError, UnknownNameError
from .labels import FER2013, LabelSet, label_set

__all__ = [
    "IDENTITY_DIGITS",
    "MAX_INPUT_SIZE",
    "MIN_INPUT_SIZE",
    "TTA_MARGIN",
    "ArchitectureSpec",
    "DetectorSpec",
    "InputSpec",
    "ModelSpec",
    "Registry",
    "WeightsFile",
    "resolve",
    "weights_identity",
]


@dataclass(frozen=True, slots=True)
class WeightsFile:
    """One weights file: where to get it and how to check it.

    ``urls`` are tried in order; ``bundled`` files ship inside the emolens wheel instead, and a
    ``path`` is a file on this machine (your own exported model), used in place and never cached.
    ``unpack="bz2"`` means the download is bz2-compressed: it is verified (``sha256``), then
    decompressed next to it (without the ``.bz2`` suffix) and verified again (``unpacked_sha256``).
    ``git_sha1`` is the file's git blob SHA-1 from the upstream repository's tree, for files
    served from a git host: checked as well as ``sha256`` (the authoritative one when the sha256
    comes from a third party).
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
    git_sha1: str = ""


@dataclass(frozen=True, slots=True)
class DetectorSpec:
    """How to build a face detector.

    ``builder`` is a class/function or an import string; it is called as
    ``builder(spec, device=..., **options)`` and must return a :class:`emolens.Detector`.
    ``options`` are every option the detector accepts, with its default: a user's
    ``detector_options`` may only name these, with values of the same type.
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
    #: Its package downloads and keeps weights of its own, which emolens neither lists nor hashes.
    package_weights: bool = False

    @property
    def identity(self) -> str:
        """``<name>@<sha256 prefix of its weights>`` (the name alone for a detector without weights files)."""
        if not self.weights or not self.weights[0].sha256:
            return self.name
        return f"{self.name}@{self.weights[0].sha256[:IDENTITY_DIGITS]}"


#: The face-crop sizes, in pixels, an :class:`InputSpec` (and ``emolens train --input-size``) accepts.
MIN_INPUT_SIZE, MAX_INPUT_SIZE = 8, 1024


@dataclass(frozen=True, slots=True)
class InputSpec:
    """What an emotion model takes as input, so one preprocessing function serves training and inference.

    A face crop (the detector's box enlarged by ``margin`` of its side on every side) is resized to
    ``size`` x ``size``, converted to ``color`` ("gray" or "rgb"), scaled to [0, 1], then normalised:
    with ``mean``/``std`` (one value per channel) when given, else each image to zero mean and unit
    variance (emolens' own models: insensitive to brightness and contrast).
    """

    size: int = 48
    color: str = "gray"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    margin: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or not MIN_INPUT_SIZE <= self.size <= MAX_INPUT_SIZE:
            raise InvalidOptionError(
                f"input size must be an integer from {MIN_INPUT_SIZE} to {MAX_INPUT_SIZE}, got {self.size!r}",
                option="input",
            )
        if self.color not in ("gray", "rgb"):
            raise InvalidOptionError(f"input color must be 'gray' or 'rgb', got {self.color!r}", option="input")
        if (self.mean is None) != (self.std is None):
            raise InvalidOptionError("give both mean and std, or neither (per-image standardisation)", option="input")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(float(v) for v in value))
                if len(getattr(self, name)) != self.channels:
                    raise InvalidOptionError(
                        f"input {name} needs {self.channels} value(s) for {self.color} input", option="input"
                    )
        if self.std is not None and not all(0 < v < float("inf") for v in self.std):
            raise InvalidOptionError(f"input std must be positive, got {self.std}", option="input")
        if not 0.0 <= float(self.margin) <= 1.0:
            raise InvalidOptionError(f"input margin must be in [0, 1], got {self.margin!r}", option="input")

    @property
    def channels(self) -> int:
        return 1 if self.color == "gray" else 3

    def describe(self) -> str:
        """One line for model cards and ``emolens models``."""
        norm = "per-image standardised" if self.mean is None else f"mean {list(self.mean)}, std {list(self.std or ())}"
        margin = f", margin {self.margin:g}" if self.margin else ""
        return f"{self.size}x{self.size} {'grayscale' if self.color == 'gray' else 'RGB'}, {norm}{margin}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "color": self.color,
            "mean": None if self.mean is None else list(self.mean),
            "std": None if self.std is None else list(self.std),
            "margin": self.margin,
        }


@dataclass(frozen=True, slots=True)
class ArchitectureSpec:
    """A network architecture that model specs and model cards name.

    ``builder`` (a callable, or an import string for built-ins and installed plugins) is called as
    ``builder(num_classes=..., input_size=..., in_channels=..., **options)`` and returns a
    ``torch.nn.Module`` mapping a normalised batch (N, C, size, size) to (N, num_classes) logits.
    Only registered architectures are ever built: a model card names one by ``name``.
    """

    name: str
    builder: str | Callable[..., Any]
    description: str = ""


RUNTIMES = ("torch", "onnx")
#: Hex digits of a weights file's sha256 that an identity (``name@0123456789ab``) carries.
IDENTITY_DIGITS = 12

#: Flip TTA (``ModelSpec.tta``) mirrors only the faces the first pass is unsure of: those whose two most likely
#: labels are less than this apart in the first pass's uncalibrated softmax. Chosen on FER2013 val: the labels
#: match mirroring every face on at least 99.5 % of val and CK+ for every bundled model that runs flip TTA
#: (``tests/test_accuracy.py``), with about a third of the faces mirrored (``python benchmarks/tta.py``,
#: docs/benchmarks.md#what-flip-tta-buys). ``1.0`` mirrors every face (``EmotionModel.with_options``).
TTA_MARGIN = 0.4


def weights_identity(file_name: str, sha256: str) -> str:
    """``<file stem>@<sha256 prefix>``, the identity of one weights file (see :attr:`ModelSpec.identity`)."""
    stem = file_name.rsplit(".", 1)[0] if "." in file_name else file_name
    return f"{stem}@{sha256[:IDENTITY_DIGITS]}"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """How to build an emotion model.

    ``runtime`` is ``"torch"`` (a registered ``architecture`` with ``options``, safetensors weights)
    or ``"onnx"`` (an ONNX graph run by onnxruntime). ``labels`` is the order
    of the model's outputs (any distinct names; the canonical ones are in :mod:`emolens.labels`).
    With ``valence_arousal=True`` the model outputs two more values after the logits, valence and
    arousal in [-1, 1]. ``version`` tells releases of the same name apart (``"v4"``): ``model="default@v4"``
    picks an earlier one (see :data:`emolens.models.PREVIOUS_MODELS`). ``int8`` is an int8 ONNX graph of
    the same network (its logits: ``load_model(..., precision="int8")`` runs the model's flip TTA and the
    calibration the graph carries in its metadata around it).
    """

    name: str
    description: str
    architecture: str = "vgg"
    runtime: str = "torch"
    labels: tuple[str, ...] = FER2013.labels
    input: InputSpec = field(default_factory=InputSpec)
    valence_arousal: bool = False
    weights: tuple[WeightsFile, ...] = ()
    license: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    tta: bool = False
    version: str = ""
    int8: tuple[WeightsFile, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", LabelSet(self.name, tuple(self.labels)).labels)  # validates them
        if self.runtime not in RUNTIMES:
            raise InvalidOptionError(
                f"model {self.name!r}: runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}",
                option="runtime",
            )

    @property
    def input_size(self) -> int:
        return self.input.size

    @property
    def identity(self) -> str:
        """``<weights file stem>@<first 12 hex digits of its sha256>``: which weights answer, whatever the name.

        The spec's name when it has no weights with a recorded hash (a run folder, a user's network).
        """
        if not self.weights or not self.weights[0].sha256:
            return self.name
        return weights_identity(self.weights[0].name, self.weights[0].sha256)

    @property
    def label_set(self) -> LabelSet:
        """The labels as a :class:`~emolens.labels.LabelSet` (a known set keeps its name)."""
        return label_set(self.labels)


class _Named(Protocol):
    @property
    def name(self) -> str: ...


SpecT = TypeVar("SpecT", bound=_Named)


def resolve(target: str | Callable[..., Any]) -> Callable[..., Any]:
    """Import ``"package.module:attribute"`` (or return a callable unchanged)."""
    if callable(target):
        return target
    module_name, _, attribute = target.partition(":")
    try:
        obj: Callable[..., Any] = getattr(importlib.import_module(module_name), attribute)
    except EmolensError:  # e.g. the plug-in's module requires an extra that is not installed: said as such
        raise
    except (ImportError, AttributeError) as exc:  # a plug-in's spec names code that is not there
        raise ModelError(
            f"cannot import {target!r} ({type(exc).__name__}: {exc}); the plug-in that registered it is broken or "
            "not installed",
            component=target,
        ) from exc
    return obj


class Registry(Generic[SpecT]):
    """A thread-safe mapping from names to specs, with close-match suggestions on a miss."""

    def __init__(
        self,
        kind: str,
        builtins: Iterable[SpecT],
        entry_point_group: str | None = None,
        *,
        reserved: Iterable[str] = (),
    ) -> None:
        self.kind = kind
        self.reserved = frozenset(reserved)  # names with another meaning where a name is asked for ("auto")
        self._specs: dict[str, SpecT] = {spec.name: spec for spec in builtins}
        self._group = entry_point_group
        self._entry_points_loaded = entry_point_group is None
        self._lock = threading.RLock()

    def register(self, spec: SpecT, *, overwrite: bool = False) -> SpecT:
        """Add ``spec``; an existing name is an error unless ``overwrite=True``."""
        self._check_name(spec)
        with self._lock:
            self._load_entry_points()
            if spec.name in self._specs and not overwrite:
                raise InvalidOptionError(
                    f"a {self.kind} named {spec.name!r} is already registered; pass overwrite=True to replace it",
                    option="overwrite",
                )
            self._specs[spec.name] = spec
        return spec

    def _check_name(self, spec: object) -> None:
        """InvalidOptionError unless ``spec`` has a name that can be asked for (not empty, not reserved)."""
        name = getattr(spec, "name", None)
        if not isinstance(name, str) or not name.strip():
            raise InvalidOptionError(
                f"register a {self.kind} spec with a name, not {type(spec).__name__} {spec!r:.60}", option="spec"
            )
        if name.lower() in self.reserved:
            raise InvalidOptionError(
                f"{name!r} cannot name a {self.kind}: it already means something where a {self.kind} is asked for "
                f"({', '.join(sorted(self.reserved))}); choose another name",
                option="name",
            )

    def unregister(self, name: str) -> None:
        """Remove a registered name (mainly for tests and plugins)."""
        with self._lock:
            self.get(name)
            del self._specs[name]

    @contextlib.contextmanager
    def temporary_changes(self) -> Iterator[Registry[SpecT]]:
        """Undo every registration made inside the ``with`` block when it ends (for tests and experiments)."""
        with self._lock:
            self._load_entry_points()
            saved = dict(self._specs)
        try:
            yield self
        finally:
            with self._lock:
                self._specs = saved

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
                self._check_name(spec)
                name = spec.name
            except Exception as exc:  # a broken plugin must not break emolens
                warnings.warn(
                    f"emolens: ignoring {self.kind} entry point {ep.name!r}: {exc}", EmolensWarning, stacklevel=3
                )
                continue
            self._specs.setdefault(name, spec)
