"""Accuracy, per-class recall, confusion matrix and calibration of a model on a dataset."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..models._network import calibrated_softmax, predict_logits
from ..models._preprocess import standardize
from ._data import CLASS_NAMES, FaceDataset

__all__ = [
    "Evaluation",
    "evaluate_ensemble",
    "evaluate_model",
    "evaluate_network",
    "expected_calibration_error",
    "predict_dataset",
    "score",
]


@dataclass(frozen=True)
class Evaluation:
    """Metrics of predictions against true labels (all fractions in [0, 1])."""

    accuracy: float
    per_class_recall: dict[str, float]
    confusion: np.ndarray  # rows = true class, columns = predicted class
    ece: float
    nll: float
    count: int

    def confusion_text(self) -> str:
        """The confusion matrix as an aligned text table."""
        short = [c[:7] for c in CLASS_NAMES]
        lines = ["true \\ pred " + " ".join(f"{c:>8}" for c in short)]
        for name, row in zip(short, self.confusion, strict=True):
            lines.append(f"{name:>12} " + " ".join(f"{v:>8d}" for v in row))
        return "\n".join(lines)

    def plot_confusion(self, path: str, title: str = "") -> None:
        """Save the confusion matrix, normalised per true class, as an image (needs matplotlib)."""
        from .._optional import require

        require("matplotlib", extra="plot", feature="the confusion-matrix plot")
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rates = self.confusion / np.maximum(self.confusion.sum(1, keepdims=True), 1)
        fig, ax = plt.subplots(figsize=(6.4, 5.6))
        image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
        for (i, j), value in np.ndenumerate(self.confusion):
            ax.text(
                j,
                i,
                f"{value}\n{rates[i, j]:.0%}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if rates[i, j] > 0.5 else "black",
            )
        ax.set_xticks(range(len(CLASS_NAMES)), CLASS_NAMES, rotation=45, ha="right")
        ax.set_yticks(range(len(CLASS_NAMES)), CLASS_NAMES)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title or f"accuracy {self.accuracy:.2%} ({self.count} images)")
        fig.colorbar(image, ax=ax, fraction=0.046)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    def to_dict(self) -> dict[str, object]:
        return {
            "accuracy": self.accuracy,
            "per_class_recall": self.per_class_recall,
            "confusion": self.confusion.tolist(),
            "ece": self.ece,
            "nll": self.nll,
            "count": self.count,
        }


def predict_dataset(
    network: nn.Module,
    data: FaceDataset,
    *,
    tta: bool = False,
    batch_size: int = 256,
    temperatures: tuple[float, ...] | None = None,
) -> np.ndarray:
    """Probabilities (N, 7) for every image of ``data``, calibrated with ``temperatures`` when given."""
    network.eval()
    out = []
    for start in range(0, len(data), batch_size):
        chunk = torch.from_numpy(data.images[start : start + batch_size]).unsqueeze(1).float().div_(255.0)
        logits = predict_logits(network, standardize(chunk), tta=tta)
        probabilities = calibrated_softmax(logits, temperatures) if temperatures else torch.softmax(logits, dim=1)
        out.append(probabilities.float().cpu().numpy())
    return np.concatenate(out)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Weighted gap between confidence and accuracy over ``bins`` equal-width confidence bins."""
    confidence = probabilities.max(1)
    correct = probabilities.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for low, high in itertools.pairwise(edges):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def score(probabilities: np.ndarray, labels: np.ndarray) -> Evaluation:
    """Metrics for given probabilities."""
    predicted = probabilities.argmax(1)
    k = len(CLASS_NAMES)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    totals = confusion.sum(1)
    recall = {
        name: float(confusion[i, i] / totals[i]) if totals[i] else float("nan") for i, name in enumerate(CLASS_NAMES)
    }
    nll = float(-np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, 1)).mean())
    return Evaluation(
        accuracy=float((predicted == labels).mean()),
        per_class_recall=recall,
        confusion=confusion,
        ece=expected_calibration_error(probabilities, labels),
        nll=nll,
        count=len(labels),
    )


def evaluate_network(
    network: nn.Module, data: FaceDataset, *, tta: bool = False, temperatures: tuple[float, ...] | None = None
) -> Evaluation:
    """Evaluate ``network`` on ``data``."""
    return score(predict_dataset(network, data, tta=tta, temperatures=temperatures), data.labels)


def evaluate_model(
    model: str,
    dataset: str,
    *,
    split: str = "val",
    tta: bool | None = None,
    skip_unreadable: bool = True,
    calibrated: bool = True,
) -> tuple[Evaluation, np.ndarray, FaceDataset]:
    """Evaluate a registered model (its shipped weights) or a run folder (its best epoch) on an image
    folder or FER2013 CSV.

    ``tta=None`` uses the model's default; unreadable images are skipped and counted in the returned
    data's ``skipped`` unless ``skip_unreadable=False``; ``calibrated=False`` ignores the calibration
    stored with the weights. Returns the metrics, the probabilities and the data.
    """
    return evaluate_ensemble(
        [model], dataset, split=split, tta=tta, skip_unreadable=skip_unreadable, calibrated=calibrated
    )


def evaluate_ensemble(
    models: Sequence[str],
    dataset: str,
    *,
    split: str = "val",
    tta: bool | None = None,
    skip_unreadable: bool = True,
    calibrated: bool = True,
) -> tuple[Evaluation, np.ndarray, FaceDataset]:
    """Evaluate the average of several models' probabilities (registered names or run folders).

    The way to choose teachers for distillation: an ensemble is worth distilling from if it beats
    its best member in accuracy or at least in NLL (the student learns the probabilities). The data
    is read once per input size. Returns the metrics, the averaged probabilities and the data.
    """
    from ._data import load_dataset

    if not models:
        raise ValueError("evaluate_ensemble needs at least one model")
    datasets: dict[int, FaceDataset] = {}
    members = []
    for model in models:
        network, input_size, use_tta, temperatures = _inference_setup(model, tta)
        if input_size not in datasets:
            datasets[input_size] = load_dataset(dataset, split, size=input_size, skip_unreadable=skip_unreadable)
        temperatures = temperatures if calibrated else None
        members.append(predict_dataset(network, datasets[input_size], tta=use_tta, temperatures=temperatures))
    probabilities = np.mean(members, axis=0)
    data = next(iter(datasets.values()))
    return score(probabilities, data.labels), probabilities, data


def _inference_setup(model: str, tta: bool | None) -> tuple[nn.Module, int, bool, tuple[float, ...] | None]:
    """(network, input size, TTA, calibration temperatures) for a registered model name or a run folder.

    A run folder is measured as `emolens export` measures it: uncalibrated, TTA as the registered
    model it was trained from. ``tta=None`` keeps the model's default.
    """
    from pathlib import Path

    from ..models import model_spec
    from ..models._classifier import EmotionModel
    from ._spec import load_trained

    if Path(model).is_dir():
        spec, network = load_trained(model)
        return network, spec.input_size, spec.tta if tta is None else tta, None
    emotion_model = EmotionModel(model_spec(model), tta=tta)
    return emotion_model.network, emotion_model.input_size, emotion_model.tta, emotion_model.temperatures
