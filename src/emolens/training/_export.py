"""Export a finished training run: safetensors weights plus a model card (JSON + Markdown).

Every number in the card is measured here, on the data named in the card, by the one dataset
inference (:func:`predict_dataset`) that ``emolens evaluate`` and ``analyze()`` run.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import models
from .._checks import check_file_stem
from .._registry import ModelSpec
from ..errors import DatasetError
from ..labels import LabelSet
from ..models import (
    CalibrationRecord,
    CardMetrics,
    EmotionModel,
    MeasuredRecord,
    ModelCard,
    PriorShift,
    RunFolder,
    TrainingRecord,
    build_model,
    last_epoch_weights,
    prepare_for_inference,
    run_spec,
    save_state,
    spec_from_card,
)
from ..weights import sha256_of
from ._calibrate import apply_temperatures, choose_calibration
from ._data import FaceDataset, load_dataset
from ._evaluate import evaluate_dataset, predict_dataset, score
from ._targets import build_targets, vote_distribution

__all__ = ["export_run", "recalibrate_card", "unshift_card"]


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
) -> ModelCard:
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
    name = check_file_stem("name", name)
    run, out = RunFolder(run_dir), Path(out_dir)
    if not run.checkpoint_file.is_file() or not run.best_weights.is_file():
        raise DatasetError(
            f"{run.path} is not a run folder of `emolens train` (it needs {run.CHECKPOINT} and {run.BEST})",
            path=run.path,
        )
    out.mkdir(parents=True, exist_ok=True)
    state = run.checkpoint()
    cfg = run.training_config(state)
    spec = run_spec(cfg)
    network = build_model(spec, last_epoch_weights(state) if last_epoch else run.best_weights)
    shift = add_prior_shift(network, cfg, spec, prior_shift) if prior_shift else ()
    weights_path = out / f"{name}.safetensors"
    save_state(network, weights_path, half=half)  # _measure adds the metadata
    # The run's weights measured like the shipped ones, so the two differ only by storage precision.
    val = load_dataset(cfg["val_data"], "val", size=spec.input_size)
    fp32 = EmotionModel.from_network(spec, prepare_for_inference(network), tta=False)
    training = TrainingRecord(
        registry_model=registered_as or cfg["model"],
        trained_from=cfg["model"],
        best_epoch=state["epoch"] if last_epoch else state["best_epoch"],  # the epoch exported
        epochs=cfg["epochs"],
        command=cfg.get("command", ""),
        config=_jsonable(cfg),
        seconds=round(state["elapsed"], 1),
        train_data_fingerprint_sha256=state["train_fingerprint"],
        epoch_choice="last" if last_epoch else "best on val",
        prior_shift=PriorShift(prior_shift, shift) if prior_shift else None,
        note=note,
        val_accuracy_fp32_weights=evaluate_dataset(fp32, val).accuracy,
    )
    card = _measure(weights_path, spec, name, training, val, half=half)
    return _write_card(card, out / f"{name}.json")


def add_prior_shift(network: torch.nn.Module, cfg: dict[str, Any], spec: ModelSpec, tau: float) -> tuple[float, ...]:
    """Add ``tau x log(class prior of the run's training targets)`` to the output layer's bias; the values added."""
    shift = tuple(tau * float(v) for v in np.log(np.clip(training_prior(cfg, spec), 1e-6, None)))
    _output_layer(network, len(spec.labels)).bias.data += torch.tensor(shift)
    return shift


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
        raise DatasetError(f"cannot shift the prior: no output layer with {classes} outputs and a bias")
    return layers[-1]


def recalibrate_card(card_path: str | Path) -> ModelCard:
    """Measure and calibrate an exported model again from its card and weights, in place.

    For when the measurement or calibration code changes after the run folder is gone: the tensors
    are kept bit for bit; the calibration in the weights' metadata, the metrics and the card are
    rewritten (so the weights' SHA-256 changes when the temperatures do). Reads the val and train
    data from the paths in the card's training configuration.
    """
    card_path = Path(card_path)
    old = ModelCard.read(card_path)
    if old.record is None:
        raise DatasetError(f"{card_path} has no training record to measure again from (was it written by hand?)")
    training = old.record.training
    # The card says what the network is (architecture, options, labels, input): the model its run trained from
    # may be a card that is gone, or an ensemble's members.
    spec = dataclasses.replace(old.spec(card_path.parent), weights=())
    half = old.record.weights_storage.startswith("float16")
    val = load_dataset(training.val_data, "val", size=spec.input_size)
    card = _measure(card_path.with_name(old.weights_file), spec, old.name, training, val, half=half)
    return _write_card(card, card_path)


def unshift_card(card_path: str | Path, out_dir: str | Path, name: str) -> ModelCard:
    """Write ``<out_dir>/<name>.json`` and ``.safetensors``: the exported model without its prior shift.

    A teacher for distillation should give the class-balanced scores it was trained to give, so a
    shipped (prior-shifted) model becomes a teacher again by subtracting the card's recorded bias
    shift; the weights are stored in float32 (float16 widened: no value changes but the bias) and
    measured again, so the card describes the unshifted model. No run folder is needed.
    """
    name = check_file_stem("name", name)
    card_path, out_dir = Path(card_path), Path(out_dir)
    card = ModelCard.read(card_path)
    if card.record is None or card.record.training.prior_shift is None:
        raise DatasetError(f"{card_path} records no prior shift: there is nothing to take out")
    shift = card.record.training.prior_shift
    network = build_model(spec_from_card(card_path), card_path.with_name(card.weights_file))
    _output_layer(network, len(card.labels)).bias.data -= torch.tensor(shift.bias_added)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights_path = out_dir / f"{name}.safetensors"
    save_state(network.float(), weights_path)
    training = dataclasses.replace(
        card.record.training,
        prior_shift=None,
        val_accuracy_fp32_weights=None,  # the shifted model's: not measured again here
        note=f"{card.name} with its prior shift ({shift.tau:g}) taken out (emolens.training.unshift_card). "
        + card.record.training.note,
    )
    record = dataclasses.replace(card.record, training=training, weights_storage="float32")
    teacher = dataclasses.replace(card, name=name, weights_file=weights_path.name, record=record)
    teacher.write(out_dir / f"{name}.json")  # the hash is stale until recalibrate_card measures and rewrites it
    return recalibrate_card(out_dir / f"{name}.json")


def _measure(
    weights_path: Path, spec: ModelSpec, name: str, training: TrainingRecord, val: FaceDataset, *, half: bool
) -> ModelCard:
    """Calibrate the weights at ``weights_path`` on ``val`` (rewriting their metadata) and measure them: the card."""
    registered_as = training.registry_model
    network = build_model(spec, weights_path)
    # Calibrate the mode analyze() uses by default: the TTA setting of the model the weights ship as.
    default_tta = (models.MODELS.get(registered_as) if registered_as in models.MODELS else spec).tta
    # Inference folds BatchNorm in place: a copy runs, the unfolded network is what gets saved.
    shipped = EmotionModel.from_network(spec, prepare_for_inference(copy.deepcopy(network)))
    train = load_dataset(training.train_data, "train", size=spec.input_size)
    # A card's flip-TTA row mirrors every face, as every card's has; by default analyze() mirrors only the
    # uncertain ones (TTA_MARGIN), which docs/benchmarks.md#what-flip-tta-buys measures against this.
    every_face = shipped.with_options(temperatures=(), tta_margin=1.0)
    raw = {tta: predict_dataset(every_face.with_options(tta=tta), val) for tta in (False, True)}
    # A model trained on the crowd's votes is calibrated against them; one trained on FER2013 labels, against those.
    targets = training.targets
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
    calibrated = {tta: apply_temperatures(raw[tta], temperatures) for tta in (False, True)}
    metrics = CardMetrics(
        val=score(calibrated[False], val.labels, val.votes, names=val.classes).to_metrics(),
        val_tta=score(calibrated[True], val.labels, val.votes, names=val.classes).to_metrics(),
        train=evaluate_dataset(shipped.with_options(tta=False, temperatures=temperatures), train).to_metrics(),
    )
    record = MeasuredRecord(
        metrics=metrics,
        calibration=CalibrationRecord.from_dict(calibration.to_dict(spec.labels)),
        training=training,
        parameters=sum(p.numel() for p in network.parameters()),
        targets=targets,
        calibrated_against="FER+ vote distributions" if targets != "original" and val.votes is not None else "labels",
        weights_bytes=weights_path.stat().st_size,
        weights_storage="float16 (loaded as float32)" if half else "float32",
        train_images=len(train),
        val_images=len(val),
        data_license=_data_license(training.train_data),
        environment={"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine()},
        exported=dt.date.today().isoformat(),
    )
    return ModelCard(
        name=name,
        labels=spec.labels,
        weights_file=weights_path.name,
        weights_sha256=sha256_of(weights_path),
        architecture=spec.architecture,
        runtime=spec.runtime,
        options=_jsonable(dict(spec.options)),
        input=spec.input,
        valence_arousal=spec.valence_arousal,
        tta=default_tta,
        weights_license="MIT",
        record=record,
    )


def _data_license(train_data: str) -> str:
    if "fer2013" in str(train_data).lower():
        return "FER2013 (Goodfellow et al., ICML 2013 challenge): research use under the challenge's terms"
    return "the training data's own terms (not known to emolens: state them when you share the model)"


def _write_card(card: ModelCard, json_path: Path) -> ModelCard:
    """Write the card (JSON and Markdown); returns it."""
    card.write(json_path)
    return card


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
