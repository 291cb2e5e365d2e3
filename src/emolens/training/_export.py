"""Export a finished training run: safetensors weights plus a model card (JSON + Markdown).

Every number in the card is measured here, on the data named in the card, by the same
prediction code that ``emolens evaluate`` uses.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import models
from .._registry import ModelSpec
from ..errors import DatasetError
from ..labels import LabelSet
from ..models._card import ModelCard
from ..models._network import build_network, load_state, prepare_for_inference, save_state
from ..weights import sha256_of
from ._calibrate import apply_temperatures, choose_calibration
from ._data import FaceDataset, load_dataset
from ._evaluate import Evaluation, evaluate_network, predict_dataset, score
from ._loop import BEST_WEIGHTS, CHECKPOINT, last_epoch_weights
from ._spec import run_spec
from ._targets import build_targets, vote_distribution

__all__ = ["export_run", "recalibrate_card"]

# Card entries that describe how the weights were trained; measuring them again keeps these.
_TRAINING = (
    "best_epoch",
    "epoch_choice",
    "epochs",
    "training_command",
    "training_config",
    "training_seconds",
    "train_data_fingerprint_sha256",
)
_PROVENANCE = (
    "name",
    "registry_model",
    "trained_from",
    "val_accuracy_fp32_weights",
    "note",
    "prior_shift",
    *_TRAINING,
)


def export_run(
    run_dir: str | Path,
    out_dir: str | Path,
    name: str,
    *,
    half: bool = False,
    note: str = "",
    registered_as: str | None = None,
    prior_shift: float = 0.0,
    last_epoch: bool = False,
) -> dict[str, Any]:
    """Write ``<out_dir>/<name>.safetensors``, ``<name>.json`` and ``<name>.md`` from ``run_dir``.

    ``half=True`` stores float16 weights (half the size); ``note`` is printed in the card (provenance);
    ``registered_as`` is the model name the weights will ship under when it is not the registered
    architecture the run was trained from (e.g. a wider variant trained with ``--model-options``).
    ``prior_shift`` (tau) adds ``tau * log(class prior of the training targets)`` to the output layer's
    bias: for a run trained with logit adjustment, which outputs class-balanced scores, it moves the
    predictions part of the way back towards the classes' frequencies (1: all the way, 0: balanced).
    ``last_epoch`` exports the last epoch's EMA weights (from the checkpoint) instead of the best epoch's:
    the best epoch is chosen on unshifted scores, which can favour the first epochs of a run started from a
    prior-shifted model; choose it with ``python -m tools.prior_shift RUN --last`` at the shift you export.
    """
    run, out = Path(run_dir), Path(out_dir)
    if not (run / CHECKPOINT).is_file() or not (run / BEST_WEIGHTS).is_file():
        raise DatasetError(
            f"{run} is not a run folder of `emolens train` (it needs {CHECKPOINT} and {BEST_WEIGHTS})", path=run
        )
    out.mkdir(parents=True, exist_ok=True)
    state = torch.load(run / CHECKPOINT, weights_only=True)
    cfg = state["config"]
    pinned = run / "config.json"  # written when training starts, with the architecture it uses
    settings = json.loads(pinned.read_text()) if pinned.is_file() else {}
    cfg = {**cfg, **{key: settings[key] for key in ("architecture_options", "labels") if key in settings}}
    spec = run_spec(cfg)
    network = build_network(spec)
    if last_epoch:
        network.load_state_dict(last_epoch_weights(state))
    else:
        load_state(network, run / BEST_WEIGHTS)
    shift: list[float] = []
    if prior_shift:
        shift = [prior_shift * float(v) for v in np.log(np.clip(training_prior(cfg, spec), 1e-6, None))]
        _output_layer(network, len(spec.labels)).bias.data += torch.tensor(shift)
    weights_path = out / f"{name}.safetensors"
    save_state(network, weights_path, half=half)  # _measure adds the metadata
    # The run's weights measured like the shipped ones, so the two differ only by storage precision.
    val = load_dataset(cfg["val_data"], "val", size=spec.input_size)
    provenance = {
        "name": name,
        "registry_model": registered_as or cfg["model"],
        "trained_from": cfg["model"],
        "val_accuracy_fp32_weights": evaluate_network(prepare_for_inference(network), val).accuracy,
        "note": note,
        "best_epoch": state["epoch"] if last_epoch else state["best_epoch"],  # the epoch exported
        "epoch_choice": "last" if last_epoch else "best on val",
        "epochs": cfg["epochs"],
        "training_command": cfg.get("command", ""),
        "training_config": _jsonable(cfg),
        "training_seconds": round(state["elapsed"], 1),
        "train_data_fingerprint_sha256": state["train_fingerprint"],
        "prior_shift": {"tau": prior_shift, "bias_added": shift} if prior_shift else None,
    }
    card = _measure(weights_path, spec, provenance, val, half=half)
    return _write_card(card, out / f"{name}.json")


def training_prior(cfg: dict[str, Any], spec: ModelSpec) -> np.ndarray:
    """The mean training target of a run: the class prior that logit adjustment trained against."""
    votes = None if cfg.get("targets", "original") == "original" else cfg.get("ferplus_train") or "auto"
    data = load_dataset(cfg["train_data"], "train", size=spec.input_size, ferplus=votes)
    targets, keep = build_targets(
        data,
        cfg.get("targets", "original"),
        LabelSet(spec.name, spec.labels),
        original_weight=cfg.get("original_weight", 0.5),
        min_emotion_share=cfg.get("min_emotion_share", 0.5),
    )
    prior: np.ndarray = targets[keep].mean(0)
    return prior


def _output_layer(network: torch.nn.Module, classes: int) -> torch.nn.Linear:
    """The network's last Linear layer with one output per class (where a prior shift goes)."""
    layers = [m for m in network.modules() if isinstance(m, torch.nn.Linear) and m.out_features == classes]
    if not layers or layers[-1].bias is None:
        raise DatasetError(f"cannot apply a prior shift: no output layer with {classes} outputs and a bias")
    return layers[-1]


def recalibrate_card(card_path: str | Path) -> dict[str, Any]:
    """Measure and calibrate an exported model again from its card and weights, in place.

    For when the measurement or calibration code changes after the run folder is gone: the tensors
    are kept bit for bit; the calibration in the weights' metadata, the metrics and the card are
    rewritten (so the weights' SHA-256 changes when the temperatures do). Reads the val and train
    data from the paths in the card's training configuration.
    """
    card_path = Path(card_path)
    old = json.loads(card_path.read_text())
    options = old["architecture"]["options"]
    spec = run_spec({**old["training_config"], "labels": old["labels"], "architecture_options": options})
    half = old["weights_storage"].startswith("float16")
    provenance = {key: old.get(key) for key in _PROVENANCE}
    val = load_dataset(old["training_config"]["val_data"], "val", size=spec.input_size)
    card = _measure(card_path.with_name(old["weights_file"]), spec, provenance, val, half=half)
    return _write_card(card, card_path)


def _measure(
    weights_path: Path, spec: ModelSpec, provenance: dict[str, Any], val: FaceDataset, *, half: bool
) -> dict[str, Any]:
    """Calibrate the weights at ``weights_path`` on ``val`` (rewriting their metadata) and measure them: the card."""
    name, registered_as, cfg = provenance["name"], provenance["registry_model"], provenance["training_config"]
    network = build_network(spec)
    load_state(network, weights_path)
    shipped = build_network(spec)
    load_state(shipped, weights_path)
    shipped = prepare_for_inference(shipped)  # measure exactly what `emolens evaluate` and analyze() run

    train = load_dataset(cfg["train_data"], "train", size=spec.input_size)
    raw = {tta: predict_dataset(shipped, val, tta=tta) for tta in (False, True)}
    # Calibrate the mode analyze() uses by default: the TTA setting of the model the weights ship as.
    default_tta = (models.MODELS.get(registered_as) if registered_as in models.MODELS else spec).tta
    # A model trained on the crowd's votes is calibrated against them; one trained on FER2013 labels, against those.
    targets = cfg.get("targets", "original")
    if targets != "original" and val.votes is not None:
        distribution = vote_distribution(val.votes)
        voted = distribution.sum(1) > 0
        calibration = choose_calibration(raw[default_tta][voted], distribution[voted])
    else:
        calibration = choose_calibration(raw[default_tta], val.labels)
    temperatures = calibration.temperatures
    # The metadata names the model the weights ship as and holds the calibration (the tensors are unchanged).
    metadata = {"model": registered_as, "name": name, "temperatures": json.dumps(temperatures)}
    save_state(network, weights_path, half=half, metadata=metadata)
    metrics: dict[str, Evaluation] = {
        "val": score(apply_temperatures(raw[False], temperatures), val.labels, val.votes, names=val.classes),
        "val_tta": score(apply_temperatures(raw[True], temperatures), val.labels, val.votes, names=val.classes),
        "train": evaluate_network(shipped, train, temperatures=temperatures),
    }
    card: dict[str, Any] = {
        "name": name,
        "registry_model": registered_as,
        "trained_from": provenance["trained_from"],
        "architecture": {"name": spec.architecture, "options": _jsonable(dict(spec.options))},
        "parameters": sum(p.numel() for p in network.parameters()),
        "default_tta": default_tta,
        "input": spec.input.to_dict(),
        "input_size": spec.input_size,
        "labels": list(spec.labels),
        "targets": targets,
        "calibrated_against": "FER+ vote distributions"
        if targets != "original" and val.votes is not None
        else "labels",
        "weights_file": weights_path.name,
        "weights_bytes": weights_path.stat().st_size,
        "weights_sha256": sha256_of(weights_path),
        "weights_storage": "float16 (loaded as float32)" if half else "float32",
        "val_accuracy_fp32_weights": provenance["val_accuracy_fp32_weights"],
        "calibration": calibration.to_dict(spec.labels),
        "note": provenance["note"],
        "prior_shift": provenance.get("prior_shift"),
        "metrics": {k: v.to_dict() for k, v in metrics.items()},
        **{key: provenance[key] for key in _TRAINING},
        "train_images": len(train),
        "val_images": len(val),
        "data_license": _data_license(cfg["train_data"]),
        "weights_license": "MIT",
        "environment": {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine()},
        "exported": dt.date.today().isoformat(),
    }
    return card


def _data_license(train_data: str) -> str:
    if "fer2013" in str(train_data).lower():
        return "FER2013 (Goodfellow et al., ICML 2013 challenge): research use under the challenge's terms"
    return "the training data's own terms (not known to emolens: state them when you share the model)"


def _write_card(card: dict[str, Any], json_path: Path) -> dict[str, Any]:
    """Write the card (JSON and Markdown) through the ModelCard schema; returns the JSON object written."""
    model_card = ModelCard.from_dict(card, json_path)
    model_card.write(json_path)
    return model_card.to_dict()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
