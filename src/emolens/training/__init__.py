"""Training and evaluation of emolens emotion models.

``TrainConfig`` and the target modes import nothing heavy; everything else imports torch on first
use (PEP 562), so the command line can build ``emolens train``'s options cheaply.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._config import TARGET_MODES, TrainConfig

if TYPE_CHECKING:
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
    from ._loop import TrainResult, train
    from ._targets import build_targets, majority_labels, vote_distribution

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

_LAZY = {
    **dict.fromkeys(
        ["FaceDataset", "load_dataset", "load_fer2013_csv", "load_image_folder", "read_ferplus_table"], "._data"
    ),
    **dict.fromkeys(
        [
            "Evaluation",
            "VoteAgreement",
            "evaluate_ensemble",
            "evaluate_model",
            "evaluate_network",
            "expected_calibration_error",
            "predict_dataset",
        ],
        "._evaluate",
    ),
    **dict.fromkeys(["export_run", "recalibrate_card"], "._export"),
    **dict.fromkeys(["TrainResult", "train"], "._loop"),
    **dict.fromkeys(["build_targets", "majority_labels", "vote_distribution"], "._targets"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'emolens.training' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
