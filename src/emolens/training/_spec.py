"""The architecture a training run uses (a registered model's spec with the run's option overrides),
and loading trained networks from run folders or registered models."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import models
from .._registry import ModelSpec
from .._weights import fetch
from ..errors import DatasetError
from ..models._network import build_network, load_state, prepare_for_inference

__all__ = ["load_trained", "run_spec", "run_weights"]


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


def run_weights(run_dir: str | Path) -> tuple[ModelSpec, Path]:
    """The architecture and best-epoch weights of a finished ``emolens train`` run folder."""
    run = Path(run_dir)
    config, weights = run / "config.json", run / "best.safetensors"
    if not config.is_file() or not weights.is_file():
        raise DatasetError(
            f"{str(run_dir)!r} is not a finished `emolens train` run folder (config.json and best.safetensors)",
            path=run,
        )
    return run_spec(json.loads(config.read_text())), weights


def load_trained(source: str | Path, device: str | torch.device = "cpu") -> tuple[ModelSpec, nn.Module]:
    """The spec and a frozen inference network of a run folder or a registered model's shipped weights.

    For teachers and for evaluating a run before it is exported; a registered model's stored
    calibration temperatures are not applied here (``EmotionModel`` does that).
    """
    if Path(source).is_dir():
        spec, weights = run_weights(source)
    else:
        spec = models.model_spec(str(source))
        if not spec.weights:
            raise DatasetError(f"model {str(source)!r} has no trained weights")
        weights = fetch(spec.weights[0])
    network = build_network(spec)
    load_state(network, weights)
    prepared = prepare_for_inference(network, device)
    prepared.requires_grad_(False)
    return spec, prepared
