"""Model cards: the one schema of the ``<name>.json`` (and ``<name>.md``) that ``emolens export`` writes.

A card says what to build (a *registered* architecture name and its options, or an ONNX graph),
what it takes (the input spec) and gives (labels, valence/arousal), and which weights file beside
it to load, by SHA-256. Reading a card is safe on untrusted files: it imports and calls nothing,
names only architectures registered in this process (cards from before architectures had names,
which give emolens' own import path, are mapped to the name), accepts only a plain file name for
the weights, bounds every size, and the weights' hash is checked before anything is built.
Measured numbers (metrics, calibration, training provenance) are typed (``record``); entries emolens
does not know are kept and written back (``unknown``), never interpreted, and reported when read.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._checks import is_plain_file_name
from .._files import check_regular_file
from .._registry import RUNTIMES, InputSpec, ModelSpec, WeightsFile
from ..errors import EmolensWarning, WeightsError, WeightsUnavailableError
from ._card_record import RECORD_KEYS, MeasuredRecord

__all__ = ["LEGACY_BUILDERS", "MAX_CARD_BYTES", "ModelCard", "is_card_path", "spec_from_card"]

_SUFFIXES = (".json", ".safetensors", ".onnx")
_WEIGHTS_SUFFIXES = (".safetensors", ".onnx")
#: Import paths that cards written before architectures were named give, mapped to the registered name.
LEGACY_BUILDERS = {"emolens.models._vgg:VGGNet": "vgg"}
MAX_CARD_BYTES = 2_000_000  # a real card is ~20 KB
_MAX_LABELS = 1000
_MAX_OPTION_NUMBER = 1 << 16  # widths, stage counts, hidden units: an absurd value could exhaust memory when built
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CORE = (
    "name",
    "architecture",
    "runtime",
    "labels",
    "input",
    "input_size",
    "default_tta",
    "valence_arousal",
    "weights_file",
    "weights_sha256",
    "weights_license",
    "description",
)


def is_card_path(model: str) -> bool:
    """True when ``model`` names an exported model's card or weights file rather than a registered name."""
    return model.endswith(_SUFFIXES)


def _bad(path: Path | str, problem: str) -> WeightsError:
    return WeightsError(f"model card {path} is refused: {problem}", filename=Path(path).name)


def _check_options(options: Any, path: Path | str) -> dict[str, Any]:
    """Architecture options: a JSON object of numbers, strings, booleans and short lists of them; an object
    may hold objects two levels deep (an ensemble's members, each with its own options)."""
    if not isinstance(options, dict):
        raise _bad(path, "architecture options must be a JSON object")
    _check_object(options, path, "", depth=0)
    return dict(options)


def _check_object(options: dict[Any, Any], path: Path | str, prefix: str, *, depth: int) -> None:
    if len(options) > 64:
        raise _bad(path, f"architecture options{' of ' + prefix if prefix else ''} have over 64 entries")
    for key, value in options.items():
        name = f"{prefix}{key}"
        values = value if isinstance(value, list) else [value]
        if len(values) > 64:
            raise _bad(path, f"architecture option {name!r} must be a number, string, boolean or a short list")
        # objects: a list of them at the top (members), and one object per entry inside them (its options)
        nested = depth < 2 and (depth > 0 or isinstance(value, list))
        for item in values:
            if isinstance(item, dict) and nested:
                _check_object(item, path, f"{name}.", depth=depth + 1)
            elif not (isinstance(item, (int, float, str, bool)) or item is None):
                raise _bad(path, f"architecture option {name!r} must be a number, string, boolean or a short list")
            elif isinstance(item, (int, float)) and not isinstance(item, bool) and abs(item) > _MAX_OPTION_NUMBER:
                raise _bad(path, f"architecture option {name!r} is out of range ({value!r:.80})")


@dataclass(frozen=True)
class ModelCard:
    """What emolens needs from a model card to build and load the model, plus its measured record.

    ``architecture`` is a registered architecture name (empty for ONNX graphs); ``weights_file`` a
    file name in the card's folder; ``record`` what ``emolens export`` measured (``None`` on a card
    written by hand); ``unknown`` the card's entries emolens does not know, written back unchanged.
    """

    name: str
    labels: tuple[str, ...]
    weights_file: str
    weights_sha256: str
    architecture: str = "vgg"
    runtime: str = "torch"
    options: Mapping[str, Any] = field(default_factory=dict)
    input: InputSpec = field(default_factory=InputSpec)
    valence_arousal: bool = False
    tta: bool = False
    weights_license: str = ""
    description: str = ""
    record: MeasuredRecord | None = None
    unknown: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, card: Mapping[str, Any], source: Path | str = "<card>") -> ModelCard:
        """Validate a card's JSON object (WeightsError saying what is wrong, never anything else)."""
        from . import ARCHITECTURES

        if not isinstance(card, Mapping):
            raise _bad(source, "it is not a JSON object")
        try:
            name, weights_file, sha = str(card["name"]), card["weights_file"], card["weights_sha256"]
            architecture_entry = card.get("architecture") or {}
            labels = card["labels"]
        except KeyError as exc:
            raise _bad(source, f"it has no {exc} entry: is it a card written by `emolens export`?") from None
        if not isinstance(weights_file, str) or not weights_file.endswith(_WEIGHTS_SUFFIXES):
            raise _bad(source, f"weights_file must be a .safetensors or .onnx file name, got {weights_file!r}")
        if not is_plain_file_name(weights_file):
            raise _bad(source, f"weights_file must be a plain file name beside the card, got {weights_file!r}")
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
            raise _bad(source, "weights_sha256 must be 64 lowercase hex digits")
        if not isinstance(labels, list) or not 0 < len(labels) <= _MAX_LABELS:
            raise _bad(source, f"labels must be a list of 1 to {_MAX_LABELS} names")
        if not all(isinstance(label, str) and 0 < len(label) <= 100 for label in labels):
            raise _bad(source, "every label must be a non-empty name of at most 100 characters")
        runtime = card.get("runtime", "torch")
        if runtime not in RUNTIMES:
            raise _bad(source, f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
        if not isinstance(architecture_entry, Mapping):
            raise _bad(source, "architecture must be a JSON object with a registered name")
        architecture = architecture_entry.get("name")
        if architecture is None and "builder" in architecture_entry:  # cards from before architectures had names
            builder = architecture_entry["builder"]
            architecture = LEGACY_BUILDERS.get(builder) if isinstance(builder, str) else None
            if architecture is None:
                raise _bad(
                    source,
                    f"it names its architecture by import path {builder!r}; cards may only name an architecture "
                    f"registered in emolens ({', '.join(ARCHITECTURES.names())}), and loading one never imports code",
                )
        architecture = str(architecture or "")
        if runtime == "torch" and architecture not in ARCHITECTURES:
            raise _bad(
                source,
                f"architecture {architecture!r} is not registered (registered: {', '.join(ARCHITECTURES.names())}); "
                "register it with emolens.register_architecture before loading this card",
            )
        options = _check_options(architecture_entry.get("options", {}), source)
        try:
            raw_input = card.get("input")
            if isinstance(raw_input, Mapping):
                input_spec = InputSpec(
                    **{k: raw_input[k] for k in ("size", "color", "mean", "std", "margin") if k in raw_input}
                )
            else:  # cards before input specs: the size alone, grayscale standardised
                input_spec = InputSpec(size=int(card.get("input_size", 48)))
            if card.get("input_size", input_spec.size) != input_spec.size:
                raise ValueError(f"input_size {card['input_size']!r} disagrees with the input's size {input_spec.size}")
        except (TypeError, ValueError) as exc:
            raise _bad(source, f"its input spec is invalid: {exc}") from None
        try:
            ModelSpec(name=name, description="", labels=tuple(labels))
        except ValueError as exc:
            raise _bad(source, str(exc)) from None
        try:
            record = MeasuredRecord.from_dict(card) if "metrics" in card else None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise _bad(source, f"its measured record is malformed ({type(exc).__name__}: {exc})") from None
        known = {*_CORE, *(RECORD_KEYS if record is not None else ())}
        unknown = {k: v for k, v in card.items() if k not in known}
        if unknown:
            warnings.warn(
                f"model card {source} has entries emolens does not read: {', '.join(sorted(unknown)[:10])} "
                "(kept as they are)",
                EmolensWarning,
                stacklevel=3,
            )
        return cls(
            name=name,
            labels=tuple(labels),
            weights_file=weights_file,
            weights_sha256=sha,
            architecture=architecture,
            runtime=str(runtime),
            options=options,
            input=input_spec,
            valence_arousal=bool(card.get("valence_arousal", False)),
            tta=bool(card.get("default_tta", False)),
            weights_license=str(card.get("weights_license", "")),
            description=str(card.get("description", "")),
            record=record,
            unknown=unknown,
        )

    @classmethod
    def read(cls, path: str | Path) -> ModelCard:
        """Read and validate ``<name>.json`` (bounded in size; WeightsError when it is not a valid card)."""
        path = Path(path)
        if not path.exists():
            raise WeightsUnavailableError(
                f"no model card {path}; pass the .json (or weights file) written by `emolens export`",
                filename=path.name,
            )
        # a FIFO or device named as a card would block or never end: refused unread
        if check_regular_file(path, lambda message: _bad(path, message), "the card") > MAX_CARD_BYTES:
            raise _bad(path, f"it is larger than {MAX_CARD_BYTES:,} bytes")
        try:
            with path.open("rb") as handle:
                text = handle.read(MAX_CARD_BYTES + 1)
            card = json.loads(text)
        except (OSError, ValueError, RecursionError) as exc:
            raise WeightsError(f"cannot read model card {path}: {exc}", filename=path.name) from None
        return cls.from_dict(card, path)

    def to_dict(self) -> dict[str, Any]:
        """The card's JSON object (core entries first, then the measured record)."""
        return {
            "name": self.name,
            "description": self.description,
            "runtime": self.runtime,
            "architecture": {"name": self.architecture, "options": dict(self.options)},
            "labels": list(self.labels),
            "input": self.input.to_dict(),
            "input_size": self.input.size,
            "valence_arousal": self.valence_arousal,
            "default_tta": self.tta,
            "weights_file": self.weights_file,
            "weights_sha256": self.weights_sha256,
            "weights_license": self.weights_license,
            **(self.record.to_dict() if self.record is not None else {}),
            **self.unknown,
        }

    def write(self, path: str | Path) -> None:
        """Write ``<name>.json`` and its Markdown rendering ``<name>.md`` beside it."""
        from ._card_text import render_card

        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")
        path.with_suffix(".md").write_text(render_card(self))

    def spec(self, folder: str | Path) -> ModelSpec:
        """The :class:`ModelSpec` of this card, with its weights file in ``folder`` (hash-checked on load)."""
        weights = WeightsFile(
            name=self.weights_file,
            sha256=self.weights_sha256,
            path=str(Path(folder) / self.weights_file),
            license=self.weights_license,
        )
        return ModelSpec(
            name=self.name,
            description=self.description or f"exported by `emolens export` ({Path(folder) / self.name}.json)",
            architecture=self.architecture,
            runtime=self.runtime,
            labels=self.labels,
            input=self.input,
            valence_arousal=self.valence_arousal,
            weights=(weights,),
            license=self.weights_license,
            options=dict(self.options),
            tta=self.tta,
        )


def spec_from_card(path: str | Path) -> ModelSpec:
    """The spec of a model exported by ``emolens export``, from its card or its weights file.

    ``path`` is ``<name>.json``, or a ``.safetensors``/``.onnx`` file with its card beside it. The
    spec is named after the card; register it (``emolens.register_model``) to use that name, or pass
    the path itself as ``model=`` to ``analyze()``, ``Analyzer`` or the command line.
    """
    card_path = Path(path).expanduser().with_suffix(".json")
    return ModelCard.read(card_path).spec(card_path.parent)
