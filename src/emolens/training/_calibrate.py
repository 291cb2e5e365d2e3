"""Temperature scaling: one scalar that makes predicted probabilities match observed accuracy.

The temperature is fitted by minimising the negative log-likelihood; ECE is reported cross-fitted
(fit on one half of the data, measure on the other, and the reverse) so the reported calibration
never comes from the data the temperature was fitted on.
"""

from __future__ import annotations

import numpy as np

from ._evaluate import expected_calibration_error

__all__ = ["apply_temperature", "cross_fitted_ece", "fit_temperature"]


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Rescale probabilities as if their logits had been divided by ``temperature``."""
    logits = np.log(np.clip(probabilities, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled: np.ndarray = np.exp(logits)
    normalised: np.ndarray = scaled / scaled.sum(axis=1, keepdims=True)
    return normalised


def _nll(probabilities: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    scaled = apply_temperature(probabilities, temperature)
    return float(-np.log(np.clip(scaled[np.arange(len(labels)), labels], 1e-12, 1.0)).mean())


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature in [0.25, 5] minimising NLL (log-spaced grid, then a finer grid around the best)."""
    grid = np.exp(np.linspace(np.log(0.25), np.log(5.0), 61))
    best = min(grid, key=lambda t: _nll(probabilities, labels, float(t)))
    fine = np.linspace(best / 1.06, best * 1.06, 41)
    return float(min(fine, key=lambda t: _nll(probabilities, labels, float(t))))


def cross_fitted_ece(probabilities: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict[str, float]:
    """ECE before and after temperature scaling, each half scored with the temperature of the other.

    ECE measured on fewer samples is biased upwards, so the comparison that decides whether scaling
    helps uses the unscaled ECE of the same halves (``ece_uncalibrated_halves``);
    ``ece_uncalibrated`` is the unscaled ECE of all the data, the number to report.
    """
    order = np.random.default_rng(seed).permutation(len(labels))
    halves = (order[: len(order) // 2], order[len(order) // 2 :])
    before, after = [], []
    for fit_on, score_on in (halves, halves[::-1]):
        t = fit_temperature(probabilities[fit_on], labels[fit_on])
        scaled = apply_temperature(probabilities[score_on], t)
        before.append(expected_calibration_error(probabilities[score_on], labels[score_on]) * len(score_on))
        after.append(expected_calibration_error(scaled, labels[score_on]) * len(score_on))
    return {
        "ece_uncalibrated": expected_calibration_error(probabilities, labels),
        "ece_uncalibrated_halves": float(sum(before) / len(labels)),
        "ece_cross_fitted": float(sum(after) / len(labels)),
    }
