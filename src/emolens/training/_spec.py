"""The architecture a training run uses: a registered model's spec, with the run's option overrides."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .. import models
from .._registry import ModelSpec

__all__ = ["run_spec"]


def run_spec(config: Mapping[str, Any]) -> ModelSpec:
    """``config["model"]``'s spec with ``config["model_options"]`` merged into its builder options.

    ``config`` is a run's configuration as a mapping (``dataclasses.asdict(TrainConfig)`` or the
    ``config.json`` of a run folder). A run folder's ``config.json`` also pins the resolved options
    (``architecture_options``), so a finished run keeps its architecture when the registered model
    it was trained from later changes. Overrides let a run try a variant of a registered architecture
    (wider, deeper) before the variant is registered under its own name.
    """
    spec = models.MODELS.get(config["model"])
    if "architecture_options" in config:  # pinned when the run was trained: the registry may have moved on
        return dataclasses.replace(spec, options=dict(config["architecture_options"]), weights=())
    overrides = config.get("model_options") or {}
    if not overrides:
        return spec
    return dataclasses.replace(spec, options={**spec.options, **overrides}, weights=())
