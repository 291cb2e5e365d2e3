"""Model specs read from the model cards that ``emolens export`` writes, so your own models load by path.

A card (``<name>.json``) records the architecture, labels, TTA default and the SHA-256 of the
weights file beside it; the spec built from it uses that file in place and checks the hash on
every load, like the weights emolens ships. Reading a card imports nothing heavy.
"""

from __future__ import annotations

import json
from pathlib import Path

from .._registry import ModelSpec, WeightsFile
from ..errors import WeightsError, WeightsUnavailableError

__all__ = ["is_card_path", "spec_from_card"]

_SUFFIXES = (".json", ".safetensors")


def is_card_path(model: str) -> bool:
    """True when ``model`` names an exported model's card or weights file rather than a registered name."""
    return model.endswith(_SUFFIXES)


def spec_from_card(path: str | Path) -> ModelSpec:
    """The spec of a model exported by ``emolens export``, from its card or its weights file.

    ``path`` is ``<name>.json`` or ``<name>.safetensors`` (the card is read from beside it). The spec is
    named after the card; register it (``emolens.register_model``) to use that name, or pass the path
    itself as ``model=`` to ``analyze()``, ``Analyzer`` or the command line.
    """
    from . import MODELS

    card_path = Path(path).expanduser().with_suffix(".json")
    try:
        card = json.loads(card_path.read_text())
    except FileNotFoundError:
        raise WeightsUnavailableError(
            f"no model card {card_path}; pass the .json (or .safetensors) written by `emolens export`",
            filename=card_path.name,
        ) from None
    except (OSError, ValueError) as exc:
        raise WeightsError(f"cannot read model card {card_path}: {exc}", filename=card_path.name) from None
    try:
        weights = WeightsFile(
            name=card["weights_file"],
            sha256=card["weights_sha256"],
            path=str(card_path.with_name(card["weights_file"])),
            license=card.get("weights_license", ""),
        )
        return ModelSpec(
            name=card["name"],
            builder=card["architecture"]["builder"],
            description=f"exported by `emolens export` ({card_path})",
            labels=tuple(card["labels"]),
            # cards before "input_size" was recorded: the input size of the architecture it was trained as
            input_size=int(card.get("input_size") or MODELS.get(card["trained_from"]).input_size),
            weights=(weights,),
            license=weights.license,
            options=card["architecture"]["options"],
            tta=bool(card["default_tta"]),
        )
    except (KeyError, TypeError) as exc:
        raise WeightsError(
            f"{card_path} is not a model card written by `emolens export` (no {exc})", filename=card_path.name
        ) from None
