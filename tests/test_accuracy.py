"""The shipped models reproduce their model cards on FER2013 val, and meet the project's targets."""

import json
from pathlib import Path

import pytest

from emolens.models import MODELS
from emolens.training import evaluate_model
from emolens.training._calibrate import choose_calibration

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "emolens" / "models" / "weights"
# Minimum val accuracy per model (with its default TTA setting). default: the core issue's target (the
# models issue asks for 0.71, not reached yet); fast: the models issue's target; large: it must stay clearly
# more accurate than the default's floor, or it has no reason to exist.
TARGETS = {"default": 0.66, "fast": 0.66, "large": 0.68}


@pytest.mark.parametrize("name", MODELS.names())
def test_model_card_is_reproduced(name: str, fer_val: Path) -> None:
    spec = MODELS.get(name)
    card = json.loads((WEIGHTS / spec.weights[0].name.replace(".safetensors", ".json")).read_text())
    assert card["weights_sha256"] == spec.weights[0].sha256, "the card describes another weights file"
    evaluation, _, data = evaluate_model(name, str(fer_val))
    assert len(data) == card["val_images"] == 3589
    key = "val_tta" if spec.tta else "val"
    assert evaluation.accuracy == pytest.approx(card["metrics"][key]["accuracy"], abs=0.002)
    assert evaluation.accuracy >= TARGETS.get(name, 0.5)
    assert evaluation.ece <= 0.05, "probabilities should be calibrated by the stored temperature"
    # the stored calibration and the card's cross-fitted ECE are reproduced from the model's own probabilities
    _, raw, _ = evaluate_model(name, str(fer_val), calibrated=False)
    chosen, stored = choose_calibration(raw, data.labels), card["calibration"]
    assert chosen.method == stored["method"]
    assert chosen.ece == pytest.approx(stored["ece"], abs=0.002)
    assert chosen.temperatures == pytest.approx(list(stored["temperatures"].values()), abs=0.01)
