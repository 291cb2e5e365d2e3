"""Accuracy, per-class recall, confusion matrix and calibration of a model on a dataset.

Scored against the original FER2013 labels and, where the data has FER+ votes, against the crowd:
the consensus (FER+ majority) with the same metrics, and the vote distribution itself
(cross-entropy, KL divergence and a calibration error whose "accuracy" is the share of people who
named the predicted class).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DatasetError, InvalidOptionError
from ..labels import LabelSet
from ._data import CLASS_NAMES, FaceDataset
from ._targets import majority_labels, vote_distribution

if TYPE_CHECKING:
    from ..models import EmotionModel, ModelSource, SplitMetrics

__all__ = [
    "Evaluation",
    "VoteAgreement",
    "evaluate_dataset",
    "evaluate_ensemble",
    "evaluate_model",
    "expected_calibration_error",
    "predict_dataset",
    "project_probabilities",
    "score",
]


@dataclass(frozen=True)
class VoteAgreement:
    """How well predicted probabilities match the FER+ vote distributions (images with emotion votes).

    ``cross_entropy`` is -sum(votes * log p) averaged over images, ``kl`` the KL divergence from the
    votes to the prediction (cross-entropy minus the votes' own entropy: 0 for a perfect match), and
    ``ece`` the calibration error where a prediction's accuracy is the share of votes for its class.
    """

    cross_entropy: float
    kl: float
    ece: float
    count: int


@dataclass(frozen=True)
class Evaluation:
    """Metrics of predictions against true labels (all fractions in [0, 1]).

    With FER+ votes, ``consensus`` holds the same metrics against the FER+ majority (on the
    ``consensus.count`` images that have one) and ``votes`` the agreement with the vote distribution.
    """

    accuracy: float
    per_class_recall: dict[str, float]
    confusion: np.ndarray  # rows = true class, columns = predicted class
    ece: float
    nll: float
    count: int
    consensus: Evaluation | None = None
    votes: VoteAgreement | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        """The class names, in the order of the confusion matrix."""
        return tuple(self.per_class_recall)

    @property
    def mean_recall(self) -> float:
        """Unweighted mean of the per-class recalls (classes absent from the data left out)."""
        values = [v for v in self.per_class_recall.values() if not np.isnan(v)]
        return float(np.mean(values)) if values else float("nan")

    def confusion_text(self) -> str:
        """The confusion matrix as an aligned text table."""
        short = [c[:7] for c in self.labels]
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
        ax.set_xticks(range(len(self.labels)), self.labels, rotation=45, ha="right")
        ax.set_yticks(range(len(self.labels)), self.labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title or f"accuracy {self.accuracy:.2%} ({self.count} images)")
        fig.colorbar(image, ax=ax, fraction=0.046)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    def to_metrics(self) -> SplitMetrics:
        """These metrics as a model card records them."""
        from ..models import SplitMetrics, VoteMetrics

        votes = self.votes
        return SplitMetrics(
            accuracy=self.accuracy,
            mean_recall=self.mean_recall,
            per_class_recall=dict(self.per_class_recall),
            confusion=tuple(tuple(int(v) for v in row) for row in self.confusion),
            ece=self.ece,
            nll=self.nll,
            count=self.count,
            consensus=None if self.consensus is None else self.consensus.to_metrics(),
            votes=None if votes is None else VoteMetrics(votes.cross_entropy, votes.kl, votes.ece, votes.count),
        )

    def to_dict(self) -> dict[str, object]:
        """The JSON object of ``emolens evaluate --json`` (and of a card's metrics)."""
        return self.to_metrics().to_dict()


def predict_dataset(model: EmotionModel, data: FaceDataset, *, batch_size: int = 256) -> np.ndarray:
    """Probabilities (N, K) over the data's classes for every image of ``data``: the one dataset inference.

    The images go through exactly what ``analyze()`` runs on a face crop (the model's input spec,
    runtime, TTA setting and calibration); vary those with :meth:`EmotionModel.with_options`. A model
    whose labels differ from the data's is scored on the data's labels (:func:`project_probabilities`).
    """
    probabilities = model.predict(list(data.images), batch_size=batch_size)
    return project_probabilities(probabilities, model.labels, data.classes)


def evaluate_dataset(model: EmotionModel, data: FaceDataset) -> Evaluation:
    """The metrics of ``model`` on ``data`` (see :func:`predict_dataset`)."""
    return score(predict_dataset(model, data), data.labels, data.votes, names=data.classes)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Weighted gap between confidence and accuracy over ``bins`` equal-width confidence bins.

    ``labels`` is (N,) class indices, or (N, K) soft labels: then a prediction counts as the share
    of the label mass on its predicted class (for vote distributions, the share of people who agree).
    """
    confidence = probabilities.max(1)
    predicted = probabilities.argmax(1)
    if labels.ndim == 2:
        correct = labels[np.arange(len(labels)), predicted].astype(np.float64)
    else:
        correct = (predicted == labels).astype(np.float64)
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for low, high in itertools.pairwise(edges):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def score(
    probabilities: np.ndarray,
    labels: np.ndarray,
    votes: np.ndarray | None = None,
    *,
    names: Sequence[str] = CLASS_NAMES,
) -> Evaluation:
    """Metrics for given probabilities against ``labels`` (indices into ``names``), and against FER+
    ``votes`` (N, 10) when given."""
    evaluation = _score_labels(probabilities, labels, names)
    if votes is None or not votes.any():
        return evaluation
    classes = LabelSet("data", tuple(names))
    majority = majority_labels(votes, classes)
    has_majority = majority >= 0
    distribution = vote_distribution(votes, classes)
    voted = distribution.sum(1) > 0
    d, p = distribution[voted].astype(np.float64), np.clip(probabilities[voted].astype(np.float64), 1e-12, 1)
    cross_entropy = float(-(d * np.log(p)).sum(1).mean())
    entropy = float(-(d * np.log(np.where(d > 0, d, 1))).sum(1).mean())
    agreement = VoteAgreement(
        cross_entropy=cross_entropy,
        kl=cross_entropy - entropy,
        ece=expected_calibration_error(probabilities[voted], distribution[voted]),
        count=int(voted.sum()),
    )
    consensus = _score_labels(probabilities[has_majority], majority[has_majority], names)
    return dataclasses.replace(evaluation, consensus=consensus, votes=agreement)


def _score_labels(probabilities: np.ndarray, labels: np.ndarray, names: Sequence[str]) -> Evaluation:
    predicted = probabilities.argmax(1)
    k = len(names)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    totals = confusion.sum(1)
    recall = {name: float(confusion[i, i] / totals[i]) if totals[i] else float("nan") for i, name in enumerate(names)}
    nll = float(-np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, 1)).mean())
    return Evaluation(
        accuracy=float((predicted == labels).mean()),
        per_class_recall=recall,
        confusion=confusion,
        ece=expected_calibration_error(probabilities, labels),
        nll=nll,
        count=len(labels),
    )


def evaluate_model(
    model: ModelSource,
    dataset: str,
    *,
    split: str = "val",
    tta: bool | None = None,
    tta_margin: float | None = None,
    skip_unreadable: bool = True,
    calibrated: bool = True,
    ferplus: str | None = "auto",
) -> tuple[Evaluation, np.ndarray, FaceDataset]:
    """Evaluate a model (a registered name, a card, a run folder's best epoch, or an EmotionModel as it is)
    on an image folder or FER2013 CSV.

    ``tta=None`` uses the model's default, ``tta_margin`` which faces flip TTA mirrors (``None``: the
    model's, as ``analyze()`` runs; ``1.0``: every face, as model cards measure); unreadable images are
    skipped and counted in the returned data's ``skipped`` unless ``skip_unreadable=False``;
    ``calibrated=False`` ignores the calibration stored with the weights. Returns the metrics, the
    probabilities and the data.
    """
    return evaluate_ensemble(
        [model],
        dataset,
        split=split,
        tta=tta,
        tta_margin=tta_margin,
        skip_unreadable=skip_unreadable,
        calibrated=calibrated,
        ferplus=ferplus,
    )


def evaluate_ensemble(
    models: Sequence[ModelSource],
    dataset: str,
    *,
    split: str = "val",
    tta: bool | None = None,
    tta_margin: float | None = None,
    skip_unreadable: bool = True,
    calibrated: bool = True,
    ferplus: str | None = "auto",
) -> tuple[Evaluation, np.ndarray, FaceDataset]:
    """Evaluate the average of several models' probabilities (any model source: names, cards, run folders,
    EmotionModels, which are used as they are).

    The way to choose teachers for distillation: an ensemble is worth distilling from if it beats
    its best member in accuracy or at least in NLL (the student learns the probabilities). The data
    is read once per input size. A run folder is measured uncalibrated, with the TTA setting of the
    registered model it was trained from, as `emolens export` measures it, except that flip TTA mirrors only
    the uncertain faces, as ``analyze()`` runs it, unless ``tta_margin=1.0`` (every face, as the cards). A model
    whose labels differ from the data's is scored on the data's labels (see :func:`project_probabilities`).
    Returns the metrics, the averaged probabilities and the data.
    """
    from ..models import load_model
    from ._data import load_dataset

    if not models:
        raise InvalidOptionError("evaluate_ensemble needs at least one model", option="models")
    datasets: dict[tuple[int, str], FaceDataset] = {}
    members = []
    for source in models:
        model = load_model(source, tta=tta).with_options(temperatures=None if calibrated else (), tta_margin=tta_margin)
        key = (model.input_size, "bgr" if model.spec.input.color == "rgb" else "gray")
        if key not in datasets:  # each input size and colour read once
            datasets[key] = load_dataset(
                dataset, split, size=key[0], color=key[1], skip_unreadable=skip_unreadable, ferplus=ferplus
            )
        members.append(predict_dataset(model, datasets[key]))
    probabilities = np.mean(members, axis=0)
    data = next(iter(datasets.values()))
    return score(probabilities, data.labels, data.votes, names=data.classes), probabilities, data


def project_probabilities(
    probabilities: np.ndarray, model_labels: Sequence[str], data_labels: Sequence[str]
) -> np.ndarray:
    """A model's probabilities over the data's labels, matched by name.

    Labels the data lacks (``contempt`` on FER2013) are dropped and the rest renormalised; a data
    label the model cannot output is an error (DatasetError naming it).
    """
    if tuple(model_labels) == tuple(data_labels):
        return probabilities
    missing = [label for label in data_labels if label not in model_labels]
    if missing:
        raise DatasetError(
            f"the model cannot predict the data's label(s) {missing} (its labels: {', '.join(model_labels)})"
        )
    columns = [list(model_labels).index(label) for label in data_labels]
    kept = probabilities[:, columns]
    total = kept.sum(1, keepdims=True)
    projected: np.ndarray = np.divide(kept, total, out=np.full_like(kept, 1 / len(columns)), where=total > 0)
    return projected
