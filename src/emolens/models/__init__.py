"""Emotion models: built-in specs and the model registry.

Declaring a spec imports nothing heavy; the architecture module is imported when a model is built.
emolens' own weights ship inside the wheel (``emolens/models/weights``) and are hash-checked at load.
"""

from __future__ import annotations

from .._registry import ModelSpec, Registry, WeightsFile

__all__ = ["BUILTIN_MODELS", "MODELS"]

_FER2013_LICENSE = "weights: MIT (emolens); trained on FER2013 (research use under the challenge's terms)"

BUILTIN_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="default",
        builder="emolens.models._vgg:VGGNet",
        description="VGG-style CNN (4 stages, 32-256 channels, 1.8M params) trained by emolens on FER2013.",
        options={"widths": (32, 64, 128, 256)},
        weights=(
            WeightsFile(
                name="emolens-vgg-small-v1.safetensors",
                sha256="5415a0696f938b784cb28e20a35d1337495f21e4ca7f786cba83256c740e42c1",
                bundled=True,
                license=_FER2013_LICENSE,
            ),
        ),
        license=_FER2013_LICENSE,
        tta=True,
    ),
)

MODELS: Registry[ModelSpec] = Registry("model", BUILTIN_MODELS, entry_point_group="emolens.models")
