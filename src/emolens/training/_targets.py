"""What a model learns from: the original FER2013 label, or the FER+ crowd votes.

FER2013 labels are one quick tag per image; FER+ asked ten people per image. Four target modes:

- ``original``: the FER2013 label, one-hot (every image).
- ``majority``: the FER+ majority, one-hot; images whose top vote is tied, is ``unknown`` or
  ``not_face``, or is a label outside the model's label set (``contempt`` for a 7-class model) are
  left out, as FER+ does when it reports accuracy.
- ``distribution``: the votes for the model's labels, normalised to sum to 1 (votes for other labels,
  such as ``contempt`` in a 7-class model, are folded away). Images without votes, or whose votes are
  mostly ``unknown``/``not_face`` (less than ``min_emotion_share`` of them name an emotion) are left out.
- ``mixed``: ``(1 - w) * distribution + w * one-hot(original)`` on the images ``distribution`` keeps,
  so one model can serve both metrics (``w`` is ``original_weight``).

The same rules define the consensus labels that evaluation scores against (:func:`majority_labels`).
"""

from __future__ import annotations

import numpy as np

from ..errors import DatasetError
from ..labels import FER2013, FERPLUS_VOTE_COLUMNS, LabelSet
from ._config import TARGET_MODES
from ._data import FaceDataset

__all__ = ["TARGET_MODES", "build_targets", "majority_labels", "vote_distribution"]

_VOTE_LABELS: tuple[str, ...] = tuple(label for _, label in FERPLUS_VOTE_COLUMNS)
_NO_EMOTION = ("unknown", "not_face")


def _columns(labels: LabelSet) -> list[int]:
    """For each label of ``labels``, its FER+ vote column (DatasetError when FER+ has no such label)."""
    missing = [label for label in labels if label not in _VOTE_LABELS or label in _NO_EMOTION]
    if missing:
        raise DatasetError(f"FER+ votes have no column for label(s) {missing} of label set {labels.name!r}")
    return [_VOTE_LABELS.index(label) for label in labels]


def _require_votes(data: FaceDataset) -> np.ndarray:
    if data.votes is None:
        raise DatasetError(
            "these targets need FER+ votes, and none were found for this data: pass the vote table "
            "(`emolens train --ferplus-train CSV`, `emolens evaluate --ferplus CSV`, `ferplus=`) or put it at "
            "<split>/../ferplus/<split name>.csv"
        )
    return data.votes


def vote_distribution(votes: np.ndarray, labels: LabelSet = FER2013) -> np.ndarray:
    """(N, K) votes for ``labels`` normalised per row (a row of zeros where none of them got a vote)."""
    chosen = votes[:, _columns(labels)].astype(np.float64)
    totals = chosen.sum(1, keepdims=True)
    distribution: np.ndarray = np.divide(chosen, totals, out=np.zeros_like(chosen), where=totals > 0)
    return distribution.astype(np.float32)


def majority_labels(votes: np.ndarray, labels: LabelSet = FER2013) -> np.ndarray:
    """(N,) index into ``labels`` of each row's FER+ majority, or -1 where it is excluded.

    Excluded: no votes, a tie for the most votes, or a top vote for ``unknown``, ``not_face`` or a
    label that ``labels`` lacks.
    """
    top = votes.max(1)
    winners = votes == top[:, None]
    tied = winners.sum(1) > 1
    best = votes.argmax(1)
    lookup = np.full(len(_VOTE_LABELS), -1, dtype=np.int64)
    for position, label in enumerate(labels):
        if label in _VOTE_LABELS and label not in _NO_EMOTION:
            lookup[_VOTE_LABELS.index(label)] = position
    result: np.ndarray = lookup[best]
    result[tied | (top <= 0)] = -1
    return result


def emotion_share(votes: np.ndarray) -> np.ndarray:
    """(N,) share of each row's votes that name an emotion (not ``unknown``/``not_face``); 0 without votes."""
    totals = votes.sum(1)
    no_emotion = votes[:, [_VOTE_LABELS.index(label) for label in _NO_EMOTION]].sum(1)
    share: np.ndarray = np.divide(
        totals - no_emotion, totals, out=np.zeros_like(totals, dtype=np.float64), where=totals > 0
    )
    return share


def build_targets(
    data: FaceDataset,
    mode: str,
    labels: LabelSet = FER2013,
    *,
    original_weight: float = 0.5,
    min_emotion_share: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """(targets (N, K) float32 rows summing to 1, keep (N,) bool) for ``data`` under ``mode``.

    Rows with ``keep`` False are left out of training (their target row is meaningless).
    """
    if mode not in TARGET_MODES:
        raise DatasetError(f"unknown target mode {mode!r}; use one of {', '.join(TARGET_MODES)}")
    k = len(labels)
    original = np.zeros((len(data), k), dtype=np.float32)
    positions = np.array([labels.index(name) if name in labels else -1 for name in data.classes])
    original_index = positions[data.labels]
    original[np.arange(len(data)), np.maximum(original_index, 0)] = 1.0
    if mode == "original":
        return original, original_index >= 0
    votes = _require_votes(data)
    if mode == "majority":
        chosen = majority_labels(votes, labels)
        targets = np.zeros((len(data), k), dtype=np.float32)
        targets[np.arange(len(data)), np.maximum(chosen, 0)] = 1.0
        return targets, chosen >= 0
    distribution = vote_distribution(votes, labels)
    keep = (distribution.sum(1) > 0) & (emotion_share(votes) >= min_emotion_share)
    if mode == "distribution":
        return distribution, keep
    if not 0.0 <= original_weight <= 1.0:
        raise DatasetError(f"original_weight must be in [0, 1], got {original_weight}")
    mixed = (1 - original_weight) * distribution + original_weight * original
    return mixed.astype(np.float32), keep & (original_index >= 0)
