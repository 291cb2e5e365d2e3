"""The one reader of ``emolens train`` run folders, and the one home of their file names.

A run folder holds ``config.json`` (the run's options, with the architecture and labels it was
trained with, written when training starts), ``best.safetensors`` (the best epoch's EMA weights),
``checkpoint.pt`` (everything needed to resume, rewritten every epoch) and the epoch log
(``log.csv``, ``log.json``). Reading the config and the spec imports no torch.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .._registry import ModelSpec
from ..errors import WeightsError
from ._card import is_card_path, spec_from_card

if TYPE_CHECKING:
    import torch

__all__ = ["RunFolder", "last_epoch_weights", "pinned_entries", "run_spec"]

#: What every built-in model read before runs recorded their input size (``emolens train --input-size``).
LEGACY_INPUT_SIZE = 48
#: What every built-in model was built with before runs recorded their architecture's name.
LEGACY_ARCHITECTURE = "vgg"
#: What a run folder's ``config.json`` pins when training starts, so it keeps its network when the registry moves on.
PINNED = ("architecture", "architecture_options", "labels", "input_size")


def pinned_entries(spec: ModelSpec) -> dict[str, Any]:
    """The :data:`PINNED` entries of a run that trains ``spec``, as its ``config.json`` records them."""
    entries = {
        "architecture": spec.architecture,
        "architecture_options": dict(spec.options),
        "labels": list(spec.labels),
        "input_size": spec.input.size,
    }
    assert tuple(entries) == PINNED
    return entries


def run_spec(config: Mapping[str, Any]) -> ModelSpec:
    """The spec a training run trains: ``config["model"]``'s spec with the run's architecture, its options,
    labels and input size: ``input_size`` when set; the registered model's when it is ``None`` (a run
    without ``--input-size``); :data:`LEGACY_INPUT_SIZE` for a built-in model when the key is absent (a
    run folder written before runs recorded their input size, when every built-in model read 48x48).
    Likewise the architecture: the pinned one, else :data:`LEGACY_ARCHITECTURE` for a built-in model in a
    run folder that pinned options but no architecture (every built-in model was a ``vgg`` then), or
    nothing at all (its options are then those of the model's newest ``vgg`` release: ``large@v2``'s,
    since ``large`` is an ensemble). ``config["model"]`` may name a pinned release (``"large@v2"``).

    ``config`` is a run's configuration (``dataclasses.asdict(TrainConfig)`` or a run folder's
    ``config.json``). A run folder pins the architecture it was trained with (``architecture`` and
    ``architecture_options``), its labels and its input size, so it keeps its network when the registered
    model later changes.
    """
    from . import BUILTIN_MODELS, MODELS
    from ._source import pinned_spec

    model = str(config["model"])
    if is_card_path(model):
        spec = spec_from_card(model)
    else:  # a registered name, or a pinned release ("large@v2": the recipe's VGG teacher)
        spec = MODELS.get(model) if model in MODELS else pinned_spec(model)
    labels = tuple(config.get("labels") or spec.labels)
    size = config.get("input_size")
    base = model.split("@", 1)[0]  # "large@v2" is a release of the built-in large
    builtin = any(base == builtin.name for builtin in BUILTIN_MODELS)
    legacy = "input_size" not in config and builtin  # a run folder from before runs recorded what they read
    if legacy:
        size = LEGACY_INPUT_SIZE  # a run from before --input-size: large reads 64x64 since v2, such runs read 48x48
    input_spec = dataclasses.replace(spec.input, size=int(size)) if size else spec.input
    architecture = str(config.get("architecture") or spec.architecture)
    if "architecture_options" in config:  # pinned when the run was trained: the registry may have moved on
        options = dict(config["architecture_options"])
        if "architecture" not in config and builtin:
            architecture = LEGACY_ARCHITECTURE  # pinned before runs named their architecture
    elif legacy and spec.architecture != LEGACY_ARCHITECTURE:  # large is an ensemble since v3; such runs were not
        architecture = LEGACY_ARCHITECTURE
        options = {**_legacy_options(base), **(config.get("model_options") or {})}
    else:
        options = {**spec.options, **(config.get("model_options") or {})}
    return dataclasses.replace(
        spec, architecture=architecture, options=options, weights=(), labels=labels, input=input_spec
    )


def _legacy_options(name: str) -> Mapping[str, Any]:
    """The options of the newest release of built-in model ``name`` that was a :data:`LEGACY_ARCHITECTURE` network."""
    from . import PREVIOUS_MODELS

    releases = [spec for spec in PREVIOUS_MODELS if spec.name.split("@")[0] == name]
    found = next((spec.options for spec in reversed(releases) if spec.architecture == LEGACY_ARCHITECTURE), None)
    if found is None:
        raise WeightsError(
            f"this run folder of {name!r} pinned no architecture and no release of {name!r} was a "
            f"{LEGACY_ARCHITECTURE} network: train it again",
            filename="config.json",
        )
    return found


@dataclass(frozen=True)
class RunFolder:
    """An ``emolens train`` output folder: its files, its configuration and the spec it trains."""

    path: Path

    CONFIG: ClassVar[str] = "config.json"
    BEST: ClassVar[str] = "best.safetensors"
    CHECKPOINT: ClassVar[str] = "checkpoint.pt"
    LOG_CSV: ClassVar[str] = "log.csv"
    LOG_JSON: ClassVar[str] = "log.json"

    def __init__(self, path: str | Path) -> None:
        object.__setattr__(self, "path", Path(path))

    @property
    def config_file(self) -> Path:
        return self.path / self.CONFIG

    @property
    def best_weights(self) -> Path:
        return self.path / self.BEST

    @property
    def checkpoint_file(self) -> Path:
        return self.path / self.CHECKPOINT

    @property
    def log_csv(self) -> Path:
        return self.path / self.LOG_CSV

    @property
    def log_json(self) -> Path:
        return self.path / self.LOG_JSON

    @property
    def name(self) -> str:
        return self.path.name

    def is_finished(self) -> bool:
        """Whether the folder has a configuration and a best epoch: enough to load or evaluate it."""
        return self.config_file.is_file() and self.best_weights.is_file()

    def config(self) -> dict[str, Any]:
        """``config.json`` as written when training started (WeightsError when missing or not JSON)."""
        try:
            config = json.loads(self.config_file.read_text())
        except (OSError, ValueError) as exc:
            raise WeightsError(
                f"{self.config_file} is not a readable run configuration ({exc})", filename=self.CONFIG
            ) from None
        if not isinstance(config, dict):
            raise WeightsError(f"{self.config_file} is not a JSON object", filename=self.CONFIG)
        return config

    def spec(self) -> ModelSpec:
        """The spec the run trains (its pinned architecture, labels and input size), named after the folder."""
        if not self.is_finished():
            raise WeightsError(
                f"{str(self.path)!r} is not a finished `emolens train` run folder (it needs {self.CONFIG} and "
                f"{self.BEST})",
                filename=self.name,
            )
        try:
            spec = run_spec(self.config())
        except (ValueError, KeyError, TypeError) as exc:
            raise WeightsError(
                f"{self.config_file} is not a valid run configuration ({exc})", filename=self.CONFIG
            ) from None
        return dataclasses.replace(spec, name=self.name)

    def checkpoint(self, map_location: str | torch.device = "cpu") -> dict[str, Any]:
        """The last epoch's checkpoint, loaded without running code (``weights_only=True``)."""
        import torch

        if not self.checkpoint_file.is_file():
            raise WeightsError(
                f"{self.path} has no {self.CHECKPOINT}: the run has not finished an epoch", filename=self.CHECKPOINT
            )
        state: dict[str, Any] = torch.load(self.checkpoint_file, weights_only=True, map_location=map_location)
        return state

    def training_config(self, checkpoint: Mapping[str, Any]) -> dict[str, Any]:
        """The run's options as its checkpoint recorded them, with the architecture, labels and input size it pinned."""
        return self.with_pinned(checkpoint["config"])

    def with_pinned(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` with the architecture (name and options), labels and input size this run pinned when it started.

        A run from before runs pinned their input size keeps no ``input_size`` key, so :func:`run_spec`
        reads it as :data:`LEGACY_INPUT_SIZE`.
        """
        pinned = self.config() if self.config_file.is_file() else {}
        merged = {**options, **{key: pinned[key] for key in PINNED if key in pinned}}
        if pinned and "input_size" not in pinned:
            merged.pop("input_size", None)
        return merged

    def epochs(self) -> list[dict[str, float]]:
        """The epoch log (one row per finished epoch, with its ``seconds``); empty for a run not started."""
        if not self.checkpoint_file.is_file() or not self.log_json.is_file():
            return []
        try:
            rows: list[dict[str, float]] = json.loads(self.log_json.read_text())
        except (OSError, ValueError):  # being rewritten, or damaged: the checkpoint still says where the run is
            return []
        return rows


def last_epoch_weights(checkpoint: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The last epoch's EMA weights in a loaded checkpoint, as a state dict of the network itself."""
    return {k.removeprefix("module."): v for k, v in checkpoint["ema"].items() if k != "n_averaged"}
