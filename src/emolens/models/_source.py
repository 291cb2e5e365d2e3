"""What a model source names, without building anything (no torch import): its spec, or a run's files.

Batch drivers and the CLI read labels and names here cheaply; :mod:`._load` builds the model.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._registry import ModelSpec
from ..errors import UnknownNameError, WeightsError
from ._card import is_card_path, spec_from_card

__all__ = ["RUN_BEST", "RUN_CONFIG", "model_spec", "model_versions", "pinned_spec", "run_spec", "run_weights"]

RUN_CONFIG = "config.json"
RUN_BEST = "best.safetensors"


def run_spec(config: Mapping[str, Any]) -> ModelSpec:
    """The spec a training run trains: ``config["model"]``'s spec with the run's architecture options and labels.

    ``config`` is a run's configuration (``dataclasses.asdict(TrainConfig)`` or a run folder's
    ``config.json``). A run folder pins the options it was trained with (``architecture_options``)
    and its labels, so it keeps its architecture when the registered model later changes.
    """
    from . import MODELS

    spec = MODELS.get(config["model"]) if not is_card_path(str(config["model"])) else spec_from_card(config["model"])
    labels = tuple(config.get("labels") or spec.labels)
    if "architecture_options" in config:  # pinned when the run was trained: the registry may have moved on
        return dataclasses.replace(spec, options=dict(config["architecture_options"]), weights=(), labels=labels)
    overrides = config.get("model_options") or {}
    return dataclasses.replace(spec, options={**spec.options, **overrides}, weights=(), labels=labels)


def run_weights(run_dir: str | Path) -> tuple[ModelSpec, Path]:
    """The spec and best-epoch weights of a finished ``emolens train`` run folder."""
    run = Path(run_dir)
    config, weights = run / RUN_CONFIG, run / RUN_BEST
    if not config.is_file() or not weights.is_file():
        raise WeightsError(
            f"{str(run_dir)!r} is not a finished `emolens train` run folder (it needs {RUN_CONFIG} and {RUN_BEST})",
            filename=run.name,
        )
    try:
        settings = json.loads(config.read_text())
        spec = run_spec(settings)
    except (ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"{config} is not a valid run configuration ({exc})", filename=config.name) from None
    return dataclasses.replace(spec, name=run.name), weights


def model_spec(model: str | Path) -> ModelSpec:
    """The spec of a registered name, a pinned version, an exported model's card or weights file, or a run folder.

    A pinned version is ``<name>@<version>`` (``"default@v2"``), a weights identity as results record it
    (``"emolens-consensus-default-v2@238c8bc93ff3"``) or the weights' file stem (a card name).
    """
    from . import MODELS

    text = str(model)
    if Path(text).is_dir():
        return run_weights(text)[0]
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
