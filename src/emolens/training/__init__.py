"""Training and evaluation of emolens emotion models (imports torch)."""

from ._data import FaceDataset, load_dataset, load_fer2013_csv, load_image_folder
from ._evaluate import (
    Evaluation,
    evaluate_ensemble,
    evaluate_model,
    evaluate_network,
    expected_calibration_error,
    predict_dataset,
)
from ._export import export_run, recalibrate_card
from ._loop import TrainConfig, TrainResult, train

__all__ = [
    "Evaluation",
    "FaceDataset",
    "TrainConfig",
    "TrainResult",
    "evaluate_ensemble",
    "evaluate_model",
    "evaluate_network",
    "expected_calibration_error",
    "export_run",
    "load_dataset",
    "load_fer2013_csv",
    "load_image_folder",
    "predict_dataset",
    "recalibrate_card",
    "train",
]
