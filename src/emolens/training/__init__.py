"""Training and evaluation of emolens emotion models (imports torch)."""

from ._data import FaceDataset, load_dataset, load_fer2013_csv, load_image_folder, read_ferplus_table
from ._evaluate import (
    Evaluation,
    VoteAgreement,
    evaluate_ensemble,
    evaluate_model,
    evaluate_network,
    expected_calibration_error,
    predict_dataset,
)
from ._export import export_run, recalibrate_card
from ._loop import TrainConfig, TrainResult, train
from ._targets import TARGET_MODES, build_targets, majority_labels, vote_distribution

__all__ = [
    "TARGET_MODES",
    "Evaluation",
    "FaceDataset",
    "TrainConfig",
    "TrainResult",
    "VoteAgreement",
    "build_targets",
    "evaluate_ensemble",
    "evaluate_model",
    "evaluate_network",
    "expected_calibration_error",
    "export_run",
    "load_dataset",
    "load_fer2013_csv",
    "load_image_folder",
    "majority_labels",
    "predict_dataset",
    "read_ferplus_table",
    "recalibrate_card",
    "train",
    "vote_distribution",
]
