"""Post-hoc calibration: temperatures that make predicted probabilities match observed accuracy.

Two calibrators, both fitted by minimising the negative log-likelihood, and neither changes which
class is predicted (a row's logits are divided by one positive number):

- ``"temperature"``: one temperature for every prediction (temperature scaling);
- ``"per-class"``: one temperature per *predicted* class, because a model can be under-confident
  when it predicts one class and over-confident when it predicts another. Each row's likelihood depends only
  on its own temperature, so each class's temperature is fitted on the rows predicting it alone.

Calibrations are written as one temperature per class, indexed by the predicted class.
ECE is reported cross-fitted: the data is split in random halves, each half is calibrated with what
the other half fitted, and the ECE of the pooled out-of-fold probabilities is averaged over several
halvings. No row is ever scored with temperatures fitted on it, and the ECE is measured on as many
rows as the uncalibrated one, so the two compare directly (ECE on fewer rows reads higher).

``labels`` are class indices (N,) or soft labels (N, K), such as FER+ vote distributions: then the
fit minimises the cross-entropy to them and the ECE counts the label mass on the predicted class.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ._evaluate import expected_calibration_error

__all__ = [
    "CALIBRATORS",
    "HALVINGS",
    "MIN_ROWS_PER_CLASS",
    "Calibration",
    "apply_temperature",
    "apply_temperatures",
    "choose_calibration",
    "cross_fitted_ece",
    "fit_calibrations",
    "fit_temperature",
]

#: A predicted class with fewer val rows than this keeps the shared temperature (too few to fit its own).
MIN_ROWS_PER_CLASS = 50

CALIBRATORS = ("temperature", "per-class")
HALVINGS = 10  # random halvings averaged by cross_fitted_ece


def apply_temperatures(probabilities: np.ndarray, temperatures: Sequence[float]) -> np.ndarray:
    """Rescale each row as if its logits had been divided by the temperature of its predicted class."""
    logits = np.log(np.clip(probabilities, 1e-12, 1.0))
    logits = logits / np.asarray(temperatures, dtype=np.float64)[logits.argmax(axis=1), None]
    logits -= logits.max(axis=1, keepdims=True)
    scaled: np.ndarray = np.exp(logits)
    normalised: np.ndarray = scaled / scaled.sum(axis=1, keepdims=True)
    return normalised


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Rescale probabilities as if their logits had been divided by ``temperature``."""
    return apply_temperatures(probabilities, [temperature] * probabilities.shape[1])


def _nll(probabilities: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of class indices (N,), or cross-entropy against soft labels (N, K)."""
    scaled = apply_temperature(probabilities, temperature)
    if labels.ndim == 2:
        return float(-(labels * np.log(np.clip(scaled, 1e-12, 1.0))).sum(1).mean())
    return float(-np.log(np.clip(scaled[np.arange(len(labels)), labels], 1e-12, 1.0)).mean())


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature in [0.25, 5] minimising NLL (log-spaced grid, then a finer grid around the best)."""
    grid = np.exp(np.linspace(np.log(0.25), np.log(5.0), 61))
    best = min(grid, key=lambda t: _nll(probabilities, labels, float(t)))
    fine = np.linspace(best / 1.06, best * 1.06, 41)
    return float(min(fine, key=lambda t: _nll(probabilities, labels, float(t))))


def fit_calibrations(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, tuple[float, ...]]:
    """Temperatures per predicted class for ``"none"`` and every calibrator in :data:`CALIBRATORS`."""
    classes = int(probabilities.shape[1])
    shared = fit_temperature(probabilities, labels)
    predicted = probabilities.argmax(axis=1)
    per_class = []
    for k in range(classes):
        rows = predicted == k
        fits = rows.sum() >= MIN_ROWS_PER_CLASS
        per_class.append(fit_temperature(probabilities[rows], labels[rows]) if fits else shared)
    return {"none": (1.0,) * classes, "temperature": (shared,) * classes, "per-class": tuple(per_class)}


def cross_fitted_ece(probabilities: np.ndarray, labels: np.ndarray, splits: int = HALVINGS) -> dict[str, float]:
    """ECE of all the data unscaled and, per calibrator, of its out-of-fold calibrated probabilities.

    For each of ``splits`` random halvings (seeds 0 ... splits-1) each half is rescaled with the
    temperatures fitted on the other half; the ECE of the pooled result is averaged over halvings.
    """
    totals = dict.fromkeys(CALIBRATORS, 0.0)
    for seed in range(splits):
        order = np.random.default_rng(seed).permutation(len(labels))
        halves = (order[: len(order) // 2], order[len(order) // 2 :])
        out_of_fold = {method: np.empty_like(probabilities, dtype=np.float64) for method in CALIBRATORS}
        for fit_on, score_on in (halves, halves[::-1]):
            fitted = fit_calibrations(probabilities[fit_on], labels[fit_on])
            for method in CALIBRATORS:
                out_of_fold[method][score_on] = apply_temperatures(probabilities[score_on], fitted[method])
        for method in CALIBRATORS:
            totals[method] += expected_calibration_error(out_of_fold[method], labels)
    return {
        "ece_uncalibrated": expected_calibration_error(probabilities, labels),
        **{f"ece_cross_fitted_{method.replace('-', '_')}": total / splits for method, total in totals.items()},
    }


@dataclasses.dataclass(frozen=True)
class Calibration:
    """The calibration chosen for a model, with the cross-fitted evidence for the choice."""

    method: str  # "none" or one of CALIBRATORS
    temperatures: tuple[float, ...]  # per predicted class, fitted on all the data
    ece: float  # the ECE to quote: unscaled for "none", else cross-fitted (never in-sample)
    report: dict[str, float]  # cross_fitted_ece's numbers
    fitted_temperature: float  # the shared temperature fitted on all the data, applied or not
    halvings: int

    def to_dict(self, class_names: Sequence[str]) -> dict[str, object]:
        """The card's ``calibration`` entry: temperatures keyed by class name."""
        return {
            **self.report,
            "halvings": self.halvings,
            "method": self.method,
            "ece": self.ece,
            "temperatures": dict(zip(class_names, self.temperatures, strict=True)),
            "fitted_temperature": self.fitted_temperature,
            "min_rows_per_class": MIN_ROWS_PER_CLASS,
        }


def choose_calibration(probabilities: np.ndarray, labels: np.ndarray, splits: int = HALVINGS) -> Calibration:
    """The calibrator with the lowest cross-fitted ECE, if it beats leaving the probabilities alone."""
    report = cross_fitted_ece(probabilities, labels, splits)
    held_out = {"none": report["ece_uncalibrated"]}
    held_out |= {method: report[f"ece_cross_fitted_{method.replace('-', '_')}"] for method in CALIBRATORS}
    method = min(held_out, key=held_out.__getitem__)
    fitted = fit_calibrations(probabilities, labels)
    return Calibration(
        method=method,
        temperatures=tuple(round(t, 4) for t in fitted[method]),
        ece=held_out[method],
        report=report,
        fitted_temperature=round(fitted["temperature"][0], 4),
        halvings=splits,
    )
