"""The shipped models reproduce their model cards on FER2013 val, and the consensus models keep their guards."""

import json
from pathlib import Path

import pytest

from emolens.models import MODELS
from emolens.training import choose_calibration, evaluate_model, vote_distribution

pytestmark = pytest.mark.slow  # full-val accuracy of every model: `pytest -m 'not slow'` skips it

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "emolens" / "models" / "weights"
BUNDLED = [spec.name for spec in MODELS.specs() if spec.weights and spec.weights[0].bundled]
# Each consensus model and the FER2013-trained model of the same architecture it replaced as `name`.
CONSENSUS = {"default": "fer2013-default", "fast": "fer2013-fast", "large": "fer2013-large"}


@pytest.mark.parametrize("name", BUNDLED)
def test_model_card_is_reproduced(name: str, fer_val: Path) -> None:
    spec = MODELS.get(name)
    card = json.loads((WEIGHTS / spec.weights[0].name.replace(".safetensors", ".json")).read_text())
    assert card["weights_sha256"] == spec.weights[0].sha256, "the card describes another weights file"
    evaluation, _, data = evaluate_model(name, str(fer_val))
    assert len(data) == card["val_images"] == 3589
    measured = card["metrics"]["val_tta" if spec.tta else "val"]
    assert evaluation.accuracy == pytest.approx(measured["accuracy"], abs=0.002)
    assert evaluation.consensus is not None and evaluation.votes is not None
    if "consensus" in measured:
        assert evaluation.consensus.accuracy == pytest.approx(measured["consensus"]["accuracy"], abs=0.002)
    # the stored calibration and the card's cross-fitted ECE are reproduced from the model's own probabilities,
    # against what the model was calibrated on: the FER+ vote distributions, or the original labels
    _, raw, _ = evaluate_model(name, str(fer_val), calibrated=False)
    if card.get("calibrated_against", "").startswith("FER+"):
        distribution = vote_distribution(data.votes)
        voted = distribution.sum(1) > 0
        chosen = choose_calibration(raw[voted], distribution[voted])
    else:
        chosen = choose_calibration(raw, data.labels)
    stored = card["calibration"]
    assert chosen.method == stored["method"]
    assert chosen.ece == pytest.approx(stored["ece"], abs=0.002)
    assert chosen.temperatures == pytest.approx(list(stored["temperatures"].values()), abs=0.01)


@pytest.mark.parametrize("name", sorted(CONSENSUS))
def test_consensus_model_beats_its_predecessor_and_keeps_the_guards(name: str, fer_val: Path, shared: Path) -> None:
    """Both measured now, side by side: more agreement with people, and no loss on CK+ (posed faces,
    FACS-validated labels) or in mean per-class recall on the consensus labels."""
    ckplus = str(shared / "datasets" / "ckplus48")
    new, _, _ = evaluate_model(name, str(fer_val))
    old, _, _ = evaluate_model(CONSENSUS[name], str(fer_val))
    assert new.consensus is not None and old.consensus is not None
    assert new.consensus.accuracy > old.consensus.accuracy
    assert new.consensus.mean_recall >= old.consensus.mean_recall
    assert evaluate_model(name, ckplus)[0].accuracy >= evaluate_model(CONSENSUS[name], ckplus)[0].accuracy
