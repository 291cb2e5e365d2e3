"""The measured record of a model card: metrics, calibration and training provenance, as typed values.

``emolens export`` measures these; the card's Markdown, the docs and ``emolens models`` read them as
attributes. In the JSON file they keep the flat layout cards have always had (``metrics``,
``calibration``, ``training_command`` ... at the top level), so every card written before still reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "RECORD_KEYS",
    "CalibrationRecord",
    "CardMetrics",
    "MeasuredRecord",
    "PriorShift",
    "SplitMetrics",
    "TrainingRecord",
    "VoteMetrics",
]


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {value!r:.40}")
    return float(value)


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError(f"expected a count, got {value!r:.40}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {value!r:.40}")
    return value


def _named_numbers(value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise TypeError("expected an object of numbers by class name")
    return {_text(k): _number(v) for k, v in value.items()}


@dataclass(frozen=True)
class VoteMetrics:
    """Agreement with the FER+ vote distributions (see :class:`emolens.training.VoteAgreement`)."""

    cross_entropy: float
    kl: float
    ece: float
    count: int

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> VoteMetrics:
        return cls(_number(d["cross_entropy"]), _number(d["kl"]), _number(d["ece"]), _count(d["count"]))

    def to_dict(self) -> dict[str, Any]:
        return {"cross_entropy": self.cross_entropy, "kl": self.kl, "ece": self.ece, "count": self.count}


@dataclass(frozen=True)
class SplitMetrics:
    """A split's metrics (see :class:`emolens.training.Evaluation`); ``consensus`` and ``votes`` with FER+ votes."""

    accuracy: float
    mean_recall: float
    per_class_recall: Mapping[str, float]
    confusion: tuple[tuple[int, ...], ...]
    ece: float
    nll: float
    count: int
    consensus: SplitMetrics | None = None
    votes: VoteMetrics | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SplitMetrics:
        confusion = tuple(tuple(_count(v) for v in row) for row in d["confusion"])
        return cls(
            accuracy=_number(d["accuracy"]),
            mean_recall=_number(d["mean_recall"]),
            per_class_recall=_named_numbers(d["per_class_recall"]),
            confusion=confusion,
            ece=_number(d["ece"]),
            nll=_number(d["nll"]),
            count=_count(d["count"]),
            consensus=cls.from_dict(d["consensus"]) if d.get("consensus") else None,
            votes=VoteMetrics.from_dict(d["votes"]) if d.get("votes") else None,
        )

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "accuracy": self.accuracy,
            "mean_recall": self.mean_recall,
            "per_class_recall": dict(self.per_class_recall),
            "confusion": [list(row) for row in self.confusion],
            "ece": self.ece,
            "nll": self.nll,
            "count": self.count,
        }
        if self.consensus is not None:
            result["consensus"] = self.consensus.to_dict()
        if self.votes is not None:
            result["votes"] = self.votes.to_dict()
        return result


@dataclass(frozen=True)
class CardMetrics:
    """The card's measurements: val without and with flip TTA, and the training images (no augmentation)."""

    val: SplitMetrics
    val_tta: SplitMetrics
    train: SplitMetrics

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CardMetrics:
        return cls(*(SplitMetrics.from_dict(d[split]) for split in ("val", "val_tta", "train")))

    def to_dict(self) -> dict[str, Any]:
        return {"val": self.val.to_dict(), "val_tta": self.val_tta.to_dict(), "train": self.train.to_dict()}

    def default(self, tta: bool) -> SplitMetrics:
        """The val metrics of the mode the model runs in by default."""
        return self.val_tta if tta else self.val


@dataclass(frozen=True)
class CalibrationRecord:
    """How the probabilities were calibrated (see :class:`emolens.training.Calibration`).

    ``method`` is ``"none"``, ``"temperature"`` or ``"per-class"``; ``ece`` the cross-fitted calibration
    error of that choice; ``min_rows_per_class`` the fewest predictions a class needs for its own temperature.
    """

    method: str
    ece: float
    temperatures: Mapping[str, float]
    fitted_temperature: float
    halvings: int
    ece_uncalibrated: float
    ece_cross_fitted_temperature: float
    ece_cross_fitted_per_class: float
    min_rows_per_class: int | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CalibrationRecord:
        rows = d.get("min_rows_per_class")
        return cls(
            method=_text(d["method"]),
            ece=_number(d["ece"]),
            temperatures=_named_numbers(d["temperatures"]),
            fitted_temperature=_number(d["fitted_temperature"]),
            halvings=_count(d["halvings"]),
            ece_uncalibrated=_number(d["ece_uncalibrated"]),
            ece_cross_fitted_temperature=_number(d["ece_cross_fitted_temperature"]),
            ece_cross_fitted_per_class=_number(d["ece_cross_fitted_per_class"]),
            min_rows_per_class=None if rows is None else _count(rows),
        )

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "ece_uncalibrated": self.ece_uncalibrated,
            "ece_cross_fitted_temperature": self.ece_cross_fitted_temperature,
            "ece_cross_fitted_per_class": self.ece_cross_fitted_per_class,
            "halvings": self.halvings,
            "method": self.method,
            "ece": self.ece,
            "temperatures": dict(self.temperatures),
            "fitted_temperature": self.fitted_temperature,
        }
        if self.min_rows_per_class is not None:
            result["min_rows_per_class"] = self.min_rows_per_class
        return result


@dataclass(frozen=True)
class PriorShift:
    """``tau`` x log(class prior of the training targets), added to the output bias at export."""

    tau: float
    bias_added: tuple[float, ...]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PriorShift:
        return cls(_number(d["tau"]), tuple(_number(v) for v in d["bias_added"]))

    def to_dict(self) -> dict[str, Any]:
        return {"tau": self.tau, "bias_added": list(self.bias_added)}


@dataclass(frozen=True)
class TrainingRecord:
    """How the weights were trained and exported.

    ``config`` is the run's :class:`emolens.training.TrainConfig` as recorded (kept for reproduction);
    the entries emolens reads from it have their own attributes (``train_data``, ``val_data`` ...).
    """

    registry_model: str
    trained_from: str
    best_epoch: int
    epochs: int
    command: str
    config: Mapping[str, Any]
    seconds: float
    train_data_fingerprint_sha256: str
    epoch_choice: str = "best on val"
    prior_shift: PriorShift | None = None
    note: str = ""
    val_accuracy_fp32_weights: float | None = None

    @property
    def train_data(self) -> str:
        return str(self.config.get("train_data", ""))

    @property
    def val_data(self) -> str:
        return str(self.config.get("val_data", ""))

    @property
    def targets(self) -> str:
        return str(self.config.get("targets", "original"))

    @property
    def model(self) -> str:
        """The model (or card) the run trained: ``--model``."""
        return str(self.config.get("model", self.trained_from))

    @classmethod
    def from_dict(cls, card: Mapping[str, Any]) -> TrainingRecord:
        config = card.get("training_config") or {}
        if not isinstance(config, Mapping):
            raise TypeError("training_config must be an object")
        shift = card.get("prior_shift")
        fp32 = card.get("val_accuracy_fp32_weights")
        return cls(
            registry_model=_text(card["registry_model"]),
            trained_from=_text(card.get("trained_from", card["registry_model"])),
            best_epoch=_count(card["best_epoch"]),
            epochs=_count(card["epochs"]),
            command=_text(card.get("training_command", "")),
            config=dict(config),
            seconds=_number(card.get("training_seconds", 0.0)),
            train_data_fingerprint_sha256=_text(card.get("train_data_fingerprint_sha256", "")),
            epoch_choice=_text(card.get("epoch_choice", "best on val")),
            prior_shift=PriorShift.from_dict(shift) if shift else None,
            note=_text(card.get("note") or ""),
            val_accuracy_fp32_weights=None if fp32 is None else _number(fp32),
        )

    def to_dict(self) -> dict[str, Any]:
        """The flat card entries of this record."""
        return {
            "registry_model": self.registry_model,
            "trained_from": self.trained_from,
            "val_accuracy_fp32_weights": self.val_accuracy_fp32_weights,
            "note": self.note,
            "prior_shift": None if self.prior_shift is None else self.prior_shift.to_dict(),
            "best_epoch": self.best_epoch,
            "epoch_choice": self.epoch_choice,
            "epochs": self.epochs,
            "training_command": self.command,
            "training_config": dict(self.config),
            "training_seconds": self.seconds,
            "train_data_fingerprint_sha256": self.train_data_fingerprint_sha256,
        }


@dataclass(frozen=True)
class MeasuredRecord:
    """Everything ``emolens export`` measured and recorded about the weights (absent on hand-written cards)."""

    metrics: CardMetrics
    calibration: CalibrationRecord
    training: TrainingRecord
    parameters: int
    targets: str
    calibrated_against: str
    weights_bytes: int
    weights_storage: str
    train_images: int
    val_images: int
    data_license: str
    environment: Mapping[str, str] = field(default_factory=dict)
    exported: str = ""

    @classmethod
    def from_dict(cls, card: Mapping[str, Any]) -> MeasuredRecord:
        environment = card.get("environment") or {}
        if not isinstance(environment, Mapping):
            raise TypeError("environment must be an object")
        return cls(
            metrics=CardMetrics.from_dict(card["metrics"]),
            calibration=CalibrationRecord.from_dict(card["calibration"]),
            training=TrainingRecord.from_dict(card),
            parameters=_count(card["parameters"]),
            targets=_text(card.get("targets", "original")),
            calibrated_against=_text(card.get("calibrated_against", "labels")),
            weights_bytes=_count(card["weights_bytes"]),
            weights_storage=_text(card["weights_storage"]),
            train_images=_count(card["train_images"]),
            val_images=_count(card["val_images"]),
            data_license=_text(card.get("data_license", "")),
            environment={_text(k): str(v) for k, v in environment.items()},
            exported=_text(card.get("exported", "")),
        )

    def to_dict(self) -> dict[str, Any]:
        """The flat card entries of this record, in the order cards have always had them."""
        training = self.training.to_dict()
        return {
            "parameters": self.parameters,
            "targets": self.targets,
            "calibrated_against": self.calibrated_against,
            "weights_bytes": self.weights_bytes,
            "weights_storage": self.weights_storage,
            "calibration": self.calibration.to_dict(),
            "metrics": self.metrics.to_dict(),
            **training,
            "train_images": self.train_images,
            "val_images": self.val_images,
            "data_license": self.data_license,
            "environment": dict(self.environment),
            "exported": self.exported,
        }


#: The top-level card entries the measured record reads (a card's other entries are core or unknown).
RECORD_KEYS = frozenset(
    {
        "parameters",
        "targets",
        "calibrated_against",
        "weights_bytes",
        "weights_storage",
        "calibration",
        "metrics",
        "registry_model",
        "trained_from",
        "val_accuracy_fp32_weights",
        "note",
        "prior_shift",
        "best_epoch",
        "epoch_choice",
        "epochs",
        "training_command",
        "training_config",
        "training_seconds",
        "train_data_fingerprint_sha256",
        "train_images",
        "val_images",
        "data_license",
        "environment",
        "exported",
    }
)
