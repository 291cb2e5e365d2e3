"""Write a card for a network that is only a starting point (``emolens train --init``): its weights, and a card
that says so (tools.imagenet_init and tools.face_init)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from emolens.labels import FER2013
from emolens.models import InputSpec, ModelCard, save_state
from emolens.weights import sha256_of


def write_init_card(
    network: nn.Module,
    card_path: Path,
    *,
    architecture: str,
    options: Mapping[str, Any],
    input_size: int,
    weights_license: str,
    description: str,
) -> None:
    """Save ``network`` beside ``card_path`` (same stem, ``.safetensors``) and write the card for FER2013's labels."""
    card_path.parent.mkdir(parents=True, exist_ok=True)
    weights_path = card_path.with_suffix(".safetensors")
    save_state(network, weights_path)
    card = ModelCard(
        name=card_path.stem,
        labels=FER2013.labels,
        weights_file=weights_path.name,
        weights_sha256=sha256_of(weights_path),
        architecture=architecture,
        options=dict(options),
        input=InputSpec(size=input_size),
        tta=True,
        weights_license=weights_license,
        description=description,
    )
    card.write(card_path)
    parameters = sum(tensor.numel() for tensor in network.parameters())
    print(f"wrote {card_path} ({parameters:,} parameters)")
