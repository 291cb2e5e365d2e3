"""Emotion models: built-in specs and the model registry.

Declaring a spec imports nothing heavy; the architecture module is imported when a model is built.
emolens' own weights ship inside the wheel (``emolens/models/weights``) and are hash-checked at load.
"""

from __future__ import annotations

from .._registry import ModelSpec, Registry, WeightsFile
from ._card import is_card_path, spec_from_card

__all__ = ["BUILTIN_MODELS", "MODELS", "spec_from_card"]

_FER2013_LICENSE = "weights: MIT (emolens); trained on FER2013 (research use under the challenge's terms)"


def _bundled(name: str, sha256: str) -> tuple[WeightsFile, ...]:
    """Weights that emolens trained and ships inside the wheel."""
    return (WeightsFile(name=name, sha256=sha256, bundled=True, license=_FER2013_LICENSE),)


BUILTIN_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="default",
        builder="emolens.models._vgg:VGGNet",
        description=(
            "VGG-style CNN (a full-resolution stem conv, then 4 stages of 64-512 channels; 2.6M params) "
            "distilled by emolens on FER2013 from the large model."
        ),
        options={"widths": (32, 64, 128, 256, 512), "convs_per_stage": (1, 2, 2, 2, 1), "hidden": 512},
        weights=_bundled(
            "emolens-vgg-wide-v3.safetensors", "947f5518f524b05f60c64361ea5d803f0d90292f5e0fda7affecb924864cb827"
        ),
        license=_FER2013_LICENSE,
        tta=True,
    ),
    ModelSpec(
        name="large",
        builder="emolens.models._vgg:VGGNet",
        description=(
            "Wide VGG-style CNN (4 stages of 64-512 channels, 2 convs each; 5.9M params) trained by emolens on "
            "FER2013: the most accurate built-in model, about 4x slower than default."
        ),
        options={"widths": (64, 128, 256, 512), "convs_per_stage": (2, 2, 2, 2), "hidden": 256},
        weights=_bundled(
            "emolens-vgg-large-v1.safetensors", "01bb7a104dd3f6ca7fa122b4d96d07a8682bc9f53d094559f2757c1b6b5a09a5"
        ),
        license=_FER2013_LICENSE,
        tta=True,
    ),
    ModelSpec(
        name="fast",
        builder="emolens.models._vgg:VGGNet",
        description=(
            "Small VGG-style CNN (5 stages, 16-256 channels, 0.65M params) distilled from larger emolens models, "
            "for video and edge use."
        ),
        options={"widths": (16, 32, 64, 128, 256), "convs_per_stage": (1, 1, 2, 2, 1), "dropout": 0.25},
        weights=_bundled(
            "emolens-vgg-fast-v2.safetensors", "95c60bfd5bbc12aaf43911d8f9fc5acc5c1a8682ea61cbecdad31446a3983d24"
        ),
        license=_FER2013_LICENSE,
    ),
)

MODELS: Registry[ModelSpec] = Registry("model", BUILTIN_MODELS, entry_point_group="emolens.models")


def model_spec(model: str) -> ModelSpec:
    """The spec for ``model``: a registered name, or the card (``.json``) or weights (``.safetensors``)
    path of a model written by ``emolens export``."""
    return spec_from_card(model) if is_card_path(model) else MODELS.get(model)
