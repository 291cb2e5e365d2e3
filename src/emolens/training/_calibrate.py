"""Post-hoc calibration: temperatures that make predicted probabilities match observed accuracy.

Two calibrators, both fitted by minimising the negative log-likelihood, and neither changes which
class is predicted (a row's logits are divided by one positive number):

- ``"temperature"``: one temperature for every prediction (temperature scaling);
- ``"per-class"``: one temperature per *predicted* class, because a model can be under-confident
  when it says "happy" and over-confident when it says "angry". Each row's likelihood depends only
  on its own temperature, so each class's temperature is fitted on the rows predicting it alone.

Calibrations are written as one temperature per class, indexed by the predicted class.
ECE is reported cross-fitted (fit on one half of the data, measure on the other, and the reverse,
averaged over several random halvings) so the reported calibration never comes from the data the
temperatures were fitted on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._evaluate import expected_calibration_error

__all__ = [
    "CALIBRATORS",
    "HALVINGS",
    "apply_temperature",
    "apply_temperatures",
    "cross_fitted_ece",
    "fit_calibration",
    "fit_temperature",
]

CALIBRATORS = ("temperature", "per-class")
# A predicted class with fewer val rows than this keeps the shared temperature (too few to fit its own).
MIN_ROWS_PER_CLASS = 50
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
    scaled = apply_temperature(probabilities, temperature)
    return float(-np.log(np.clip(scaled[np.arange(len(labels)), labels], 1e-12, 1.0)).mean())


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature in [0.25, 5] minimising NLL (log-spaced grid, then a finer grid around the best)."""
    grid = np.exp(np.linspace(np.log(0.25), np.log(5.0), 61))
    best = min(grid, key=lambda t: _nll(probabilities, labels, float(t)))
    fine = np.linspace(best / 1.06, best * 1.06, 41)
    return float(min(fine, key=lambda t: _nll(probabilities, labels, float(t))))


def fit_calibration(probabilities: np.ndarray, labels: np.ndarray, method: str) -> tuple[float, ...]:
    """Temperatures per predicted class for ``method`` (one of :data:`CALIBRATORS`, or ``"none"``)."""
    classes = int(probabilities.shape[1])
    if method == "none":
        return (1.0,) * classes
    shared = fit_temperature(probabilities, labels)
    if method == "temperature":
        return (shared,) * classes
    if method != "per-class":
        raise ValueError(f"unknown calibration method {method!r}; use 'none' or one of {CALIBRATORS}")
    predicted = probabilities.argmax(axis=1)
    temperatures = []
    for k in range(classes):
        rows = predicted == k
        fits = rows.sum() >= MIN_ROWS_PER_CLASS
        temperatures.append(fit_temperature(probabilities[rows], labels[rows]) if fits else shared)
    return tuple(temperatures)


def cross_fitted_ece(probabilities: np.ndarray, labels: np.ndarray, splits: int = HALVINGS) -> dict[str, float]:
    """ECE unscaled and, per calibrator, cross-fitted: each half scored with what the other half fitted.

    ECE measured on fewer samples is biased upwards, so the comparison that decides whether a
    calibrator helps uses the unscaled ECE of the same halves (``ece_uncalibrated_halves``);
    ``ece_uncalibrated`` is the unscaled ECE of all the data. Each number is the mean over
    ``splits`` random halvings (seeds 0 ... splits-1), which steadies it.
    """
    totals = dict.fromkeys(("none", *CALIBRATORS), 0.0)
    for seed in range(splits):
        order = np.random.default_rng(seed).permutation(len(labels))
        halves = (order[: len(order) // 2], order[len(order) // 2 :])
        for fit_on, score_on in (halves, halves[::-1]):
            for method in totals:
                temperatures = fit_calibration(probabilities[fit_on], labels[fit_on], method)
                scaled = apply_temperatures(probabilities[score_on], temperatures)
                totals[method] += expected_calibration_error(scaled, labels[score_on]) * len(score_on)
    mean = {method: total / (splits * len(labels)) for method, total in totals.items()}
    return {
        "ece_uncalibrated": expected_calibration_error(probabilities, labels),
        "ece_uncalibrated_halves": mean["none"],
        **{f"ece_cross_fitted_{method.replace('-', '_')}": mean[method] for method in CALIBRATORS},
    }
