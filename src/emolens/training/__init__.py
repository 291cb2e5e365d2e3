"""Training and evaluation of emolens emotion models.

``TrainConfig``, the target modes and the optimizer defaults import nothing heavy; everything else
imports torch on first use (PEP 562), so the command line can build ``emolens train``'s options cheaply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes
from ._config import (
    DEFAULT_LR,
    DEFAULT_WEIGHT_DECAY,
    OPTIMIZERS,
    SCHEDULES,
    TARGET_MODES,
    TrainConfig,
    add_train_arguments,
    train_config_from_args,
)

if TYPE_CHECKING:
    from ._augment import cutmix, mixup
    from ._calibrate import (
        CALIBRATORS,
        MIN_ROWS_PER_CLASS,
        Calibration,
        apply_temperature,
        apply_temperatures,
        choose_calibration,
        cross_fitted_ece,
        fit_calibrations,
        fit_temperature,
    )
    from ._crop_dataset import CropSummary, build_crop_dataset, majority_vote
    from ._data import FaceDataset, load_dataset, load_fer2013_csv, load_image_folder, read_ferplus_table
    from ._distill import Teachers, distillation_loss
    from ._ensemble import export_ensemble
    from ._evaluate import (
        Evaluation,
        VoteAgreement,
        evaluate_dataset,
        evaluate_ensemble,
        evaluate_model,
        expected_calibration_error,
        predict_dataset,
        project_probabilities,
        score,
    )
    from ._export import export_run, recalibrate_card, unshift_card
    from ._loop import TrainResult, train
    from ._optim import build_optimizer, build_schedule
    from ._recipe import RECIPE_STAGES, RecipeStage, StagePlan, plan_stage, run_recipe
    from ._targets import build_targets, majority_labels, vote_distribution

__all__ = [
    "CALIBRATORS",
    "DEFAULT_LR",
    "DEFAULT_WEIGHT_DECAY",
    "MIN_ROWS_PER_CLASS",
    "OPTIMIZERS",
    "RECIPE_STAGES",
    "SCHEDULES",
    "TARGET_MODES",
    "Calibration",
    "CropSummary",
    "Evaluation",
    "FaceDataset",
    "RecipeStage",
    "StagePlan",
    "Teachers",
    "TrainConfig",
    "TrainResult",
    "VoteAgreement",
    "add_train_arguments",
    "apply_temperature",
    "apply_temperatures",
    "build_crop_dataset",
    "build_optimizer",
    "build_schedule",
    "build_targets",
    "choose_calibration",
    "cross_fitted_ece",
    "cutmix",
    "distillation_loss",
    "evaluate_dataset",
    "evaluate_ensemble",
    "evaluate_model",
    "expected_calibration_error",
    "export_ensemble",
    "export_run",
    "fit_calibrations",
    "fit_temperature",
    "load_dataset",
    "load_fer2013_csv",
    "load_image_folder",
    "majority_labels",
    "majority_vote",
    "mixup",
    "plan_stage",
    "predict_dataset",
    "project_probabilities",
    "read_ferplus_table",
    "recalibrate_card",
    "run_recipe",
    "score",
    "train",
    "train_config_from_args",
    "unshift_card",
    "vote_distribution",
]

__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "._augment": ["cutmix", "mixup"],
        "._calibrate": [
            "CALIBRATORS",
            "MIN_ROWS_PER_CLASS",
            "Calibration",
            "apply_temperature",
            "apply_temperatures",
            "choose_calibration",
            "cross_fitted_ece",
            "fit_calibrations",
            "fit_temperature",
        ],
        "._crop_dataset": ["CropSummary", "build_crop_dataset", "majority_vote"],
        "._data": ["FaceDataset", "load_dataset", "load_fer2013_csv", "load_image_folder", "read_ferplus_table"],
        "._distill": ["Teachers", "distillation_loss"],
        "._ensemble": ["export_ensemble"],
        "._evaluate": [
            "Evaluation",
            "VoteAgreement",
            "evaluate_dataset",
            "evaluate_ensemble",
            "evaluate_model",
            "expected_calibration_error",
            "predict_dataset",
            "project_probabilities",
            "score",
        ],
        "._export": ["export_run", "recalibrate_card", "unshift_card"],
        "._loop": ["TrainResult", "train"],
        "._optim": ["build_optimizer", "build_schedule"],
        "._recipe": ["RECIPE_STAGES", "RecipeStage", "StagePlan", "plan_stage", "run_recipe"],
        "._targets": ["build_targets", "majority_labels", "vote_distribution"],
    },
    __all__,
)
