"""What a model source names, without building anything (no torch import): its spec.

Batch drivers and the CLI read labels and names here cheaply; :mod:`._load` builds the model.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .._registry import ModelSpec
from ..errors import UnknownNameError
from ._card import is_card_path, spec_from_card
from ._run import RunFolder

__all__ = ["model_spec", "model_versions", "pinned_spec"]


def model_spec(model: str | Path) -> ModelSpec:
    """The spec of a registered name, a pinned version, an exported model's card or weights file, or a run folder.

    A pinned version is ``<name>@<version>`` (``"default@v2"``), a weights identity as results record it
    (``"emolens-consensus-default-v2@238c8bc93ff3"``) or the weights' file stem (a card name).
    """
    from . import MODELS

    text = str(model)
    if Path(text).is_dir():
        return RunFolder(text).spec()
    if is_card_path(text):
        return spec_from_card(text)
    if text in MODELS:
        return MODELS.get(text)
    return pinned_spec(text)


def model_versions() -> dict[str, ModelSpec]:
    """Every pin a request may name, ``"<name>@<version>"`` -> its spec (named so): the current release of
    each versioned registered model, then the earlier ones of :data:`emolens.models.PREVIOUS_MODELS`."""
    from . import MODELS, PREVIOUS_MODELS

    current = [spec for spec in MODELS.specs() if spec.version and spec.weights]
    pins = {f"{spec.name}@{spec.version}": spec for spec in current}
    pins.update((spec.name, spec) for spec in PREVIOUS_MODELS)
    return {pin: dataclasses.replace(spec, name=pin) for pin, spec in pins.items()}


def pinned_spec(text: str) -> ModelSpec:
    """The spec of a pinned version or weights identity (see :func:`model_spec`); UnknownNameError if none.

    Pins are named ``<name>@<version>``; a registered model without versions (HSEmotion) is found by its
    identity too and keeps its name.
    """
    from . import MODELS

    pins = model_versions()
    if text in pins:
        return pins[text]
    for spec in [*pins.values(), *(spec for spec in MODELS.specs() if spec.weights and not spec.version)]:
        identity = spec.identity
        if text in (identity, identity.split("@", 1)[0]):
            return spec
    base = text.split("@", 1)[0]
    for spec in pins.values():  # a card's name with a wrong hash: that model's versions
        if spec.identity.split("@", 1)[0] == base:
            base = spec.name.split("@", 1)[0]
    matching = [pin for pin in pins if pin.startswith(f"{base}@")]  # the versions of the name asked for
    raise UnknownNameError("model", text, [*MODELS.names(), *sorted(pins)], suggestions=matching or None)
