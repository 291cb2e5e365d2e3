"""export_ensemble (python -m tools.ensemble): exported models joined into one ``ensemble`` model, shifted,
measured and refused like any exported model. The architecture itself is tested with every built-in one in
tests/test_architectures.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import emolens
from emolens.errors import DatasetError, InvalidOptionError, WeightsError
from emolens.training import (
    TrainConfig,
    build_targets,
    evaluate_model,
    export_ensemble,
    export_run,
    load_dataset,
    recalibrate_card,
    train,
)

pytestmark = pytest.mark.slow  # trains two members in miniature


@pytest.fixture(scope="module")
def members(voted_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two exported `fast` networks trained for one epoch on the votes: one reads 48x48 crops, one 64x64."""
    out = tmp_path_factory.mktemp("members")
    for name, size in (("small", 48), ("big", 64)):
        run = out / "runs" / name
        cfg = TrainConfig(
            str(voted_tiny / "train"),
            str(voted_tiny / "val"),
            str(run),
            model="fast",
            init="fast",
            epochs=1,
            input_size=size,
            targets="distribution",
            logit_adjustment=1.0,
            batch_size=32,
            ema_decay=0.5,
        )
        train(cfg)
        export_run(run, out, name)
    return [out / "small.json", out / "big.json"]


def test_an_ensemble_is_exported_with_its_shift_and_measured_like_any_model(
    members: list[Path], tmp_path: Path
) -> None:
    card = export_ensemble(members, tmp_path, "pair", prior_shift=0.3, command="python -m tools.ensemble ...")
    assert card.architecture == "ensemble" and card.input.size == 64  # the largest member's
    assert [m["input_size"] for m in card.options["members"]] == [48, 64]
    assert {m["architecture"] for m in card.options["members"]} == {"vgg"}
    record = card.record
    assert record is not None and record.training.epoch_choice == "members"
    assert record.training.prior_shift is not None and record.training.prior_shift.tau == 0.3
    # the shift sits in the output layer's bias, 0.3 x log(prior of the members' training targets)
    bias = load_file(tmp_path / "pair.safetensors")["output.bias"].numpy()
    config = dict(record.training.config)
    targets, kept = build_targets(load_dataset(config["train_data"], "train", ferplus="auto"), "distribution")
    prior = targets[kept].mean(0)
    np.testing.assert_allclose(bias, 0.3 * np.log(np.clip(prior, 1e-6, None)), atol=1e-5)
    assert [m["card"] for m in config["members"]] == [str(path) for path in members]
    # every member's tensors, unchanged, under members.<i>.
    weights = load_file(tmp_path / "pair.safetensors")
    for index, member in enumerate(members):
        for key, tensor in load_file(member.with_suffix(".safetensors")).items():
            assert torch.equal(weights[f"members.{index}.{key}"], tensor), key
    # loaded like any model; the card's val numbers are what emolens evaluate measures on it
    model = emolens.load_model(tmp_path / "pair.json", precision="float32")
    assert model.labels == emolens.labels.FER2013.labels and not model.tta  # flip TTA where a member has it
    measured, _, _ = evaluate_model(model, config["val_data"], split="val")
    assert measured.accuracy == pytest.approx(record.metrics.default(card.tta).accuracy, abs=0.02)
    markdown = (tmp_path / "pair.md").read_text()
    assert "An ensemble of exported models" in markdown and "`small`" in markdown and "`big`" in markdown
    # measured again from the card alone (no run folder): the same tensors, the card rewritten
    before = {k: v.clone() for k, v in weights.items()}
    recalibrate_card(tmp_path / "pair.json")
    for key, tensor in load_file(tmp_path / "pair.safetensors").items():
        assert torch.equal(tensor, before[key]), key


def test_an_ensemble_refuses_members_it_cannot_join(members: list[Path], tmp_path: Path) -> None:
    with pytest.raises(InvalidOptionError, match="2 or more members"):
        export_ensemble(members[:1], tmp_path, "one")
    # a member exported with a prior shift: its class-balanced scores are gone
    shifted = export_run(Path(str(members[0].parent / "runs" / "small")), tmp_path, "shifted", prior_shift=0.5)
    assert shifted.record is not None
    with pytest.raises(DatasetError, match="take it out first"):
        export_ensemble([tmp_path / "shifted.json", members[1]], tmp_path, "bad")
    # a member whose weights are not the file its card names
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    for file in (members[1], members[1].with_suffix(".safetensors")):
        shutil.copy(file, tampered / file.name)
    data = bytearray((tampered / "big.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (tampered / "big.safetensors").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="refusing to load a file that changed"):
        export_ensemble([members[0], tampered / "big.json"], tmp_path, "bad")
    # a member trained on other data: no single prior for the shift
    other = tmp_path / "other"
    other.mkdir()
    card = json.loads(members[1].read_text())
    card["training_config"]["train_data"] = str(tmp_path / "elsewhere")
    (other / "big.json").write_text(json.dumps(card))
    shutil.copy(members[1].with_suffix(".safetensors"), other / "big.safetensors")
    with pytest.raises(DatasetError, match="other data"):
        export_ensemble([members[0], other / "big.json"], tmp_path, "bad")
    assert not (tmp_path / "bad.json").exists()
