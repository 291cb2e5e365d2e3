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

import torch

from .. import models
from .._registry import ModelSpec
from .._weights import sha256_of
from ..models._network import build_network, load_state, prepare_for_inference, save_state
from ._calibrate import MIN_ROWS_PER_CLASS, apply_temperatures, choose_calibration
from ._data import CLASS_NAMES, FaceDataset, load_dataset
from ._evaluate import Evaluation, evaluate_network, predict_dataset, score
from ._loop import BEST_WEIGHTS, CHECKPOINT
from ._spec import run_spec

__all__ = ["export_run", "recalibrate_card"]

# Card entries that describe how the weights were trained; measuring them again keeps these.
_TRAINING = (
    "best_epoch",
    "epochs",
    "training_command",
    "training_config",
    "training_seconds",
    "train_data_fingerprint_sha256",
)
_PROVENANCE = ("name", "registry_model", "trained_from", "val_accuracy_fp32_weights", "note", *_TRAINING)


def export_run(
    run_dir: str | Path,
    out_dir: str | Path,
    name: str,
    *,
    half: bool = False,
    note: str = "",
    registered_as: str | None = None,
) -> dict[str, Any]:
    """Write ``<out_dir>/<name>.safetensors``, ``<name>.json`` and ``<name>.md`` from ``run_dir``.

    ``half=True`` stores float16 weights (half the size); ``note`` is printed in the card (provenance);
    ``registered_as`` is the model name the weights will ship under when it is not the registered
    architecture the run was trained from (e.g. a wider variant trained with ``--model-options``).
    """
    run, out = Path(run_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = torch.load(run / CHECKPOINT, weights_only=True)
    cfg = state["config"]
    pinned = run / "config.json"  # written when training starts, with the architecture it uses
    options = json.loads(pinned.read_text()).get("architecture_options") if pinned.is_file() else None
    if options is not None:
        cfg = {**cfg, "architecture_options": options}
    spec = run_spec(cfg)
    network = build_network(spec)
    load_state(network, run / BEST_WEIGHTS)
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
        "best_epoch": state["best_epoch"],
        "epochs": cfg["epochs"],
        "training_command": cfg.get("command", ""),
        "training_config": _jsonable(cfg),
        "training_seconds": round(state["elapsed"], 1),
        "train_data_fingerprint_sha256": state["train_fingerprint"],
    }
    card = _measure(weights_path, spec, provenance, val, half=half)
    _write_card(card, out / f"{name}.json")
    return card


def recalibrate_card(card_path: str | Path) -> dict[str, Any]:
    """Measure and calibrate an exported model again from its card and weights, in place.

    For when the measurement or calibration code changes after the run folder is gone: the tensors
    are kept bit for bit; the calibration in the weights' metadata, the metrics and the card are
    rewritten (so the weights' SHA-256 changes when the temperatures do). Reads the val and train
    data from the paths in the card's training configuration.
    """
    card_path = Path(card_path)
    old = json.loads(card_path.read_text())
    spec = run_spec(old["training_config"])
    half = old["weights_storage"].startswith("float16")
    provenance = {key: old[key] for key in _PROVENANCE}
    val = load_dataset(old["training_config"]["val_data"], "val", size=spec.input_size)
    card = _measure(card_path.with_name(old["weights_file"]), spec, provenance, val, half=half)
    _write_card(card, card_path)
    return card


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
    calibration = choose_calibration(raw[default_tta], val.labels)
    temperatures = calibration.temperatures
    # The metadata names the model the weights ship as and holds the calibration (the tensors are unchanged).
    metadata = {"model": registered_as, "name": name, "temperatures": json.dumps(temperatures)}
    save_state(network, weights_path, half=half, metadata=metadata)
    metrics: dict[str, Evaluation] = {
        "val": score(apply_temperatures(raw[False], temperatures), val.labels),
        "val_tta": score(apply_temperatures(raw[True], temperatures), val.labels),
        "train": evaluate_network(shipped, train, temperatures=temperatures),
    }
    card: dict[str, Any] = {
        "name": name,
        "registry_model": registered_as,
        "trained_from": provenance["trained_from"],
        "architecture": {"builder": str(spec.builder), "options": _jsonable(dict(spec.options))},
        "parameters": sum(p.numel() for p in network.parameters()),
        "default_tta": default_tta,
        "input": f"{spec.input_size}x{spec.input_size} grayscale face crop, per-image standardised",
        "input_size": spec.input_size,
        "labels": list(CLASS_NAMES),
        "weights_file": weights_path.name,
        "weights_bytes": weights_path.stat().st_size,
        "weights_sha256": sha256_of(weights_path),
        "weights_storage": "float16 (loaded as float32)" if half else "float32",
        "val_accuracy_fp32_weights": provenance["val_accuracy_fp32_weights"],
        "calibration": calibration.to_dict(CLASS_NAMES),
        "note": provenance["note"],
        "metrics": {k: v.to_dict() for k, v in metrics.items()},
        **{key: provenance[key] for key in _TRAINING},
        "train_images": len(train),
        "val_images": len(val),
        "data_license": "FER2013 (Goodfellow et al., ICML 2013 challenge): research use under the challenge's terms",
        "weights_license": "MIT",
        "environment": {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine()},
        "exported": dt.date.today().isoformat(),
    }
    return card


def _write_card(card: dict[str, Any], json_path: Path) -> None:
    json_path.write_text(json.dumps(card, indent=2) + "\n")
    json_path.with_suffix(".md").write_text(render_card(card))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _trained_from(card: dict[str, Any]) -> str:
    base = card.get("trained_from", card["registry_model"])
    return "" if base == card["registry_model"] else f" (trained as a variant of the `{base}` architecture)"


def _calibration_text(card: dict[str, Any]) -> str:
    c = card["calibration"]
    mode = "flip TTA" if card.get("default_tta", True) else "no TTA"
    measured = (
        f"Expected calibration error on val ({mode}, the default): {c['ece_uncalibrated']:.4f} unscaled. "
        f"Cross-fitted (calibrated by NLL on one random half of val and applied to the other, and the reverse; "
        f"ECE of all of val out of fold, averaged over {c['halvings']} halvings): "
        f"{c['ece_cross_fitted_temperature']:.4f} with one temperature, "
        f"{c['ece_cross_fitted_per_class']:.4f} with a temperature per predicted class."
    )
    if c["method"] == "none":
        return (
            f"Calibration: {measured} Neither beats the unscaled probabilities (the NLL-fitted temperature was "
            f"{c['fitted_temperature']:.3f}), so none is applied: the shipped probabilities are the model's own."
        )
    what = (
        "one temperature"
        if c["method"] == "temperature"
        else f"a temperature per predicted class (a class predicted fewer than {MIN_ROWS_PER_CLASS} times keeps "
        "the shared one)"
    )
    temperatures = ", ".join(f"{label} {t:.3f}" for label, t in c["temperatures"].items())
    return (
        f"Calibration: {measured} The better of the two, {what}, is applied: fitted on all of val and stored in "
        f"the weights file ({temperatures}; a row's logits are divided by the temperature of its predicted class, "
        f"which never changes the prediction). The ECE and NLL of the val rows above are therefore optimistic: "
        f"quote the cross-fitted {c['ece']:.4f}."
    )


def _row(split: str, metrics: dict[str, Any]) -> str:
    return f"| {split} | {metrics['count']} | {metrics['accuracy']:.4f} | {metrics['ece']:.4f} | {metrics['nll']:.4f} |"


def render_card(card: dict[str, Any]) -> str:
    """The model card as Markdown."""
    m = card["metrics"]
    tta = card.get("default_tta", True)
    default = m["val_tta"] if tta else m["val"]
    mode = "flip TTA" if tta else "no TTA"
    lines = [
        f"# Model card: `{card['name']}`",
        "",
        f"Registered as `{card['registry_model']}`{_trained_from(card)}. "
        f"Architecture `{card['architecture']['builder']}` "
        f"with options `{card['architecture']['options']}`: {card['parameters']:,} parameters.",
        f"Input: {card['input']}. Output: probabilities over {', '.join(card['labels'])}.",
        f"Weights: `{card['weights_file']}`, {card['weights_bytes']:,} bytes, {card['weights_storage']}, "
        f"sha256 `{card['weights_sha256']}`.",
        "",
        "## Accuracy (FER2013)",
        "",
        "| split | images | accuracy | ECE (15 bins) | NLL |",
        "|---|---|---|---|---|",
        _row("train (Training, no augmentation)", m["train"]),
        _row("val (PublicTest)" + ("" if tta else ", the default"), m["val"]),
        _row("val, flip TTA" + (" (the default)" if tta else ""), m["val_tta"]),
        "",
        _calibration_text(card),
        "",
        f"The val split was used to pick the best epoch ({card['best_epoch']} of {card['epochs']}), so val accuracy is "
        "slightly optimistic; the PrivateTest split is held out for independent checking. "
        f"Val accuracy of the training run's float32 weights: {card['val_accuracy_fp32_weights']:.4f}.",
        "",
        f"Per-class recall on val ({mode}): "
        + ", ".join(f"{k} {v:.3f}" for k, v in default["per_class_recall"].items()),
        "",
        f"Confusion matrix on val ({mode}; rows = true class, columns = predicted):",
        "",
        "| true \\ predicted | " + " | ".join(card["labels"]) + " |",
        "|---|" + "---|" * len(card["labels"]),
    ]
    for label, row in zip(card["labels"], default["confusion"], strict=True):
        lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
    lines += [
        "",
        "## Training",
        "",
        f"Command (run from the repository root, {card['training_seconds'] / 60:.0f} minutes on a 2-core CPU):",
        "",
        "```bash",
        card["training_command"],
        "```",
        "",
        f"Training data fingerprint (sha256 of pixels + labels): `{card['train_data_fingerprint_sha256']}`.",
        *([card["note"]] if card.get("note") else []),
        f"Environment: torch {card['environment']['torch']}, Python {card['environment']['python']}.",
        "",
        "## License",
        "",
        f"Weights: {card['weights_license']}. Data: {card['data_license']}.",
        "",
    ]
    return "\n".join(lines)
