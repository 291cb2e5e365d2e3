"""Flip TTA mirrors only the faces whose first answer is unsure (``tta_margin``), on real FER2013 faces."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import emolens
from emolens.errors import InvalidOptionError
from emolens.models import TTA_MARGIN, EmotionModel

from .conftest import fer_samples


class CountingRuntime:
    """Wraps a runtime and records the batch size and TTA flag of every call."""

    def __init__(self, runtime: object) -> None:
        self.runtime = runtime
        self.calls: list[tuple[int, bool]] = []

    def forward(self, batch: torch.Tensor, *, tta: bool) -> torch.Tensor:
        self.calls.append((len(batch), tta))
        return self.runtime.forward(batch, tta=tta)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def faces(fer_val: Path) -> list[np.ndarray]:
    files, _ = fer_samples(fer_val, 6)
    return [cv2.imread(str(file), cv2.IMREAD_GRAYSCALE) for file in files]


@pytest.fixture(scope="module")
def model() -> EmotionModel:
    return emolens.load_model("default", precision="float32")  # float32: the same logits whatever the batch


def _margins(model: EmotionModel, faces: list[np.ndarray]) -> np.ndarray:
    top = np.sort(model.with_options(tta=False, temperatures=()).predict(faces), axis=1)
    return top[:, -1] - top[:, -2]


def test_only_uncertain_faces_are_mirrored_and_they_get_the_full_tta_answer(
    model: EmotionModel, faces: list[np.ndarray]
) -> None:
    assert model.tta and model.tta_margin == TTA_MARGIN  # the shipped default
    unsure = _margins(model, faces) < TTA_MARGIN
    assert 0 < unsure.sum() < len(faces)  # both kinds among these 42 faces
    counting = CountingRuntime(model.runtime)
    selective = EmotionModel(model.spec, counting, device=model.device, temperatures=model.temperatures)
    answer = selective.predict(faces)
    # one plain pass over every face, then one over the mirrored uncertain ones; never the doubled batch
    assert counting.calls == [(len(faces), False), (int(unsure.sum()), False)]
    every_face = model.with_options(tta_margin=1.0).predict(faces)
    without = model.with_options(tta=False).predict(faces)
    np.testing.assert_allclose(answer[unsure], every_face[unsure], atol=1e-4)
    np.testing.assert_allclose(answer[~unsure], without[~unsure], atol=1e-6)


def test_margin_one_mirrors_every_face_in_one_call_and_zero_none(model: EmotionModel, faces: list[np.ndarray]) -> None:
    counting = CountingRuntime(model.runtime)
    every_face = EmotionModel(model.spec, counting, device=model.device, tta_margin=1.0)
    every_face.predict(faces)
    assert counting.calls == [(len(faces), True)]  # exactly what flip TTA ran before it was selective
    never = model.with_options(tta_margin=0.0).predict(faces)
    np.testing.assert_allclose(never, model.with_options(tta=False).predict(faces), atol=1e-6)


def test_confident_faces_cost_one_pass(model: EmotionModel, faces: list[np.ndarray]) -> None:
    sure = [face for face, margin in zip(faces, _margins(model, faces), strict=True) if margin >= TTA_MARGIN]
    counting = CountingRuntime(model.runtime)
    EmotionModel(model.spec, counting, device=model.device).predict(sure)
    assert counting.calls == [(len(sure), False)]


@pytest.mark.parametrize("margin", [-0.1, 1.5, float("nan"), "0.4", True, None])
def test_a_bad_margin_is_refused(model: EmotionModel, margin: object) -> None:
    if margin is None:  # None keeps the model's margin; numpy numbers are numbers
        assert model.with_options(tta_margin=None).tta_margin == model.tta_margin
        assert model.with_options(tta_margin=np.float32(0.25)).tta_margin == 0.25
        return
    with pytest.raises(InvalidOptionError, match="tta_margin"):
        model.with_options(tta_margin=margin)  # type: ignore[arg-type]


class LinearRuntime:
    """A stand-in graph with valence and arousal: fixed linear outputs of the pixels, 7 logits + 2 values."""

    def __init__(self) -> None:
        self.weights = torch.from_numpy(np.random.default_rng(0).normal(0, 0.05, (48 * 48, 9)).astype(np.float32))

    def forward(self, batch: torch.Tensor, *, tta: bool) -> torch.Tensor:
        out = batch.flatten(1) @ self.weights
        return (out + batch.flip(-1).flatten(1) @ self.weights) / 2 if tta else out


def test_extra_outputs_and_small_batches_follow_the_same_rule(model: EmotionModel, faces: list[np.ndarray]) -> None:
    """Valence and arousal of an uncertain face are averaged with the mirror's, as its logits are; batches
    smaller than the crops give the same answer as one batch."""
    spec = dataclasses.replace(model.spec, name="linear-va", valence_arousal=True, tta=True)
    linear = EmotionModel(spec, LinearRuntime(), device=torch.device("cpu"))
    every_face = linear.with_options(tta_margin=1.0).predict_output(faces)
    without = linear.with_options(tta=False).predict_output(faces)
    top = np.sort(without.probabilities, axis=1)
    unsure = top[:, -1] - top[:, -2] < TTA_MARGIN
    assert 0 < unsure.sum() < len(faces)
    for batch_size in (len(faces), 5):
        answer = linear.predict_output(faces, batch_size=batch_size)
        for got, full, plain in (
            (answer.probabilities, every_face.probabilities, without.probabilities),
            (answer.valence, every_face.valence, without.valence),
            (answer.arousal, every_face.arousal, without.arousal),
        ):
            assert got is not None and full is not None and plain is not None
            np.testing.assert_allclose(got[unsure], full[unsure], atol=1e-5)
            np.testing.assert_allclose(got[~unsure], plain[~unsure], atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_selective_tta_on_cuda(faces: list[np.ndarray]) -> None:
    on_gpu = emolens.load_model("default", device="cuda")
    on_cpu = emolens.load_model("default", precision="float32")
    assert (on_gpu.predict(faces).argmax(1) == on_cpu.predict(faces).argmax(1)).mean() >= 0.95
