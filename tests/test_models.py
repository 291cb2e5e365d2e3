"""Every registered emotion model with bundled weights: loads them verified and classifies real FER2013 faces.

Models whose weights are downloaded (HSEmotion) are tested through generated stand-ins in test_onnx.py.
"""

from pathlib import Path

import cv2
import numpy as np
import pytest

from emolens import EmotionModel, load_model
from emolens.errors import WeightsError
from emolens.models import MODELS

from .conftest import fer_samples

CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


BUNDLED = [spec.name for spec in MODELS.specs() if spec.weights and spec.weights[0].bundled]


@pytest.fixture(scope="module", params=BUNDLED)
def model(request: pytest.FixtureRequest) -> EmotionModel:
    return load_model(request.param)


def test_classifies_real_faces_well_above_chance(model: EmotionModel, fer_val: Path) -> None:
    files, labels = fer_samples(fer_val, per_class=40)
    crops = [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files]
    probabilities = model.predict(crops)
    assert probabilities.shape == (len(files), 7)
    assert np.allclose(probabilities.sum(1), 1.0)
    predicted = [CLASSES[i] for i in probabilities.argmax(1)]
    accuracy = np.mean([p == t for p, t in zip(predicted, labels, strict=True)])
    assert accuracy > 0.5, f"{model.name}: {accuracy:.3f} on {len(files)} val faces (chance 0.14)"
    assert tuple(model.labels) == tuple(CLASSES)


def test_accepts_colour_crops_of_any_size(model: EmotionModel, fer_val: Path) -> None:
    gray = cv2.imread(str(next((fer_val / "happy").glob("*.jpg"))), cv2.IMREAD_GRAYSCALE)
    big = cv2.cvtColor(cv2.resize(gray, (160, 160)), cv2.COLOR_GRAY2BGR)
    a, b = model.predict([gray, big])
    assert np.abs(a - b).max() < 0.1
    assert model.predict([]).shape == (0, 7)


def test_brightness_does_not_change_the_prediction(model: EmotionModel, fer_val: Path) -> None:
    gray = cv2.imread(str(next((fer_val / "surprise").glob("*.jpg"))), cv2.IMREAD_GRAYSCALE)
    darker = (gray.astype(np.float32) * 0.6).astype(np.uint8)
    a, b = model.predict([gray, darker])
    assert a.argmax() == b.argmax()


def test_saved_weights_are_byte_for_byte_reproducible(tmp_path: Path) -> None:
    """Saving the same weights in two processes gives the same file, which loads back unchanged."""
    import subprocess
    import sys

    import torch

    from emolens.models import build_model, read_temperatures, save_state

    script = (
        "import sys, torch\n"
        "from emolens.models import MODELS\n"
        "from emolens.models import build_model, save_state\n"
        "torch.manual_seed(0)\n"
        "save_state(build_model(MODELS.get('fast')), sys.argv[1],"
        " metadata={'model': 'fast', 'name': 'x', 'temperatures': '[1.25, 1, 1, 0.8, 1, 1, 1]'})\n"
    )
    paths = [tmp_path / f"{i}.safetensors" for i in range(2)]
    for path in paths:
        subprocess.run([sys.executable, "-c", script, str(path)], check=True)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    torch.manual_seed(0)
    original = build_model(MODELS.get("fast"))
    loaded = build_model(MODELS.get("fast"), paths[0])
    for (name, a), b in zip(original.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert read_temperatures(paths[0], 7) == (1.25, 1.0, 1.0, 0.8, 1.0, 1.0, 1.0)
    # files written before per-class calibration hold one temperature for every class
    save_state(original, paths[1], metadata={"temperature": "1.5"})
    assert read_temperatures(paths[1], 7) == (1.5,) * 7
    save_state(original, paths[1], metadata={"model": "fast"})  # no calibration: the model's own probabilities
    assert read_temperatures(paths[1], 7) == (1.0,) * 7
    for malformed in ({"temperatures": "[1.0, -2.0]"}, {"temperatures": "not json"}, {"temperature": "0"}):
        save_state(original, paths[1], metadata=malformed)  # never silently run uncalibrated
        with pytest.raises(WeightsError, match="malformed calibration") as caught:
            read_temperatures(paths[1], 7)
        assert caught.value.filename == "1.safetensors"
