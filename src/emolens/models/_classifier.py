"""EmotionModel: a registered network with its weights, ready to classify face crops."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .._registry import ModelSpec
from .._weights import fetch
from ..errors import EmolensError
from ._network import (
    build_network,
    calibrated_softmax,
    load_state,
    predict_logits,
    prepare_for_inference,
    read_temperatures,
)
from ._preprocess import crops_to_tensor

__all__ = ["EmotionModel"]


class EmotionModel:
    """Classifies uint8 face crops (gray or BGR, any size) into emotion probabilities.

    Probabilities are calibrated with the temperatures stored in the weights file (one per predicted class).

    Safe to share between threads: inference runs under ``torch.inference_mode`` and holds no
    per-call state.
    """

    def __init__(self, spec: ModelSpec, *, device: str | torch.device = "cpu", tta: bool | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.device = torch.device(device)
        self.tta = spec.tta if tta is None else tta
        network = build_network(spec)
        self.temperatures = (1.0,) * len(spec.labels)
        if spec.weights:
            path = fetch(spec.weights[0])
            load_state(network, path)
            self.temperatures = read_temperatures(path, len(spec.labels))
        self.network = prepare_for_inference(network, self.device)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.spec.labels

    @property
    def input_size(self) -> int:
        return self.spec.input_size

    def predict(self, crops: Sequence[np.ndarray], *, batch_size: int = 256) -> np.ndarray:
        """Probabilities (N, len(labels)) as float64 rows summing to 1; (0, len(labels)) for no crops."""
        if len(crops) == 0:
            return np.zeros((0, len(self.labels)))
        out = []
        for start in range(0, len(crops), batch_size):
            batch = crops_to_tensor(crops[start : start + batch_size], self.input_size)
            logits = predict_logits(self.network, batch, tta=self.tta)
            out.append(calibrated_softmax(logits, self.temperatures).cpu().numpy())
        probabilities = np.concatenate(out)
        if not np.isfinite(probabilities).all():
            raise EmolensError(f"model {self.name!r} produced non-finite outputs; its weights may be broken")
        return probabilities
