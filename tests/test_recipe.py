"""The consensus recipe (meant for a GPU) in miniature on the CPU: every stage trains, distils and exports."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import emolens
from emolens.cli import main
from emolens.models import last_epoch_weights
from emolens.training import TrainConfig, export_run, plan_stage, run_recipe

pytestmark = pytest.mark.slow  # trains three models in miniature: `pytest -m 'not slow'` skips it


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the answer on a machine without a GPU")
def test_recipe_picks_the_cpu_without_a_gpu_and_refuses_cuda_at_once(
    voted_tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--device defaulted to cuda, which crashed inside the first stage on a CPU machine ("a bug in emolens")."""
    out = tmp_path / "recipe"
    data = [str(voted_tiny / "train"), str(voted_tiny / "val"), "--out", str(out), "--mini"]
    assert main(["recipe", *data, "--device", "cuda"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err and not out.exists()
    teachers = ["--teacher", "fast", "--teacher", "default"]  # two: an ensemble, as `emolens train` takes one
    assert main(["recipe", *data, "--stage", "fast", *teachers]) == 0  # the default device: the CPU here
    assert "emolens-consensus-fast: val consensus" in capsys.readouterr().out
    config = json.loads((out / "runs" / "consensus-fast" / "config.json").read_text())
    assert config["device"] == "cpu" and config["teachers"] == ["fast", "default"]


def test_recipe_in_miniature(voted_tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "recipe"
    args = [
        "recipe",
        str(voted_tiny / "train"),
        str(voted_tiny / "val"),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--mini",
    ]
    code = main(args)
    assert code == 0
    captured = capsys.readouterr()
    printed = captured.out
    # each stage's time was measured and printed before it started
    for name in ("consensus-large", "consensus-default", "consensus-fast"):
        assert re.search(rf"{name}: 1 epoch\(s\) left x [\d.]+ min \(measured from 8 timed steps\)", captured.err)
    for name in ("consensus-large", "consensus-default", "consensus-fast"):
        weights = out / f"emolens-{name}.safetensors"
        assert weights.is_file() and weights.stat().st_size <= 16 * 2**20
        assert f"emolens-{name}: val consensus" in printed
        model = emolens.load_model(out / f"emolens-{name}.json")
        assert model.labels == emolens.labels.FER2013.labels
    card = (out / "emolens-consensus-default.md").read_text()
    assert "## Agreement with people (FER+ consensus)" in card and "--teacher" in card
    assert "--targets distribution" in card and "--logit-adjustment 1.0" in card and "Prior shift: 0.4" in card
    # run again: every stage is exported already, so nothing trains
    before = (out / "emolens-consensus-fast.safetensors").stat().st_mtime_ns
    assert main(args) == 0
    assert capsys.readouterr().err.count("already trained and exported") == 3
    assert (out / "emolens-consensus-fast.safetensors").stat().st_mtime_ns == before
    # an export of large from before it read 64x64 crops is not this stage's: trained (resumed) and exported again
    large_card = out / "emolens-consensus-large.json"
    assert json.loads(large_card.read_text())["input"]["size"] == 64
    large_card.write_text(large_card.read_text().replace('"size": 64', '"size": 48'))
    assert main([*args, "--stage", "large"]) == 0
    assert "already trained and exported" not in capsys.readouterr().err
    assert json.loads(large_card.read_text())["input"]["size"] == 64
    # an old export beside a run folder pinned at the old size: refused, not resumed and exported at 48 again
    large_card.write_text(large_card.read_text().replace('"size": 64', '"size": 48'))
    config = out / "runs" / "consensus-large" / "config.json"
    config.write_text(config.read_text().replace('"input_size": 64', '"input_size": 48'))
    assert main([*args, "--stage", "large"]) == 2
    refusal = "holds a run of consensus-large at 48x48 pixels and this recipe trains it at 64x64"
    assert refusal in capsys.readouterr().err
    # the last epoch, exported on its own: the weights of the checkpoint's EMA, and the card says so
    run = out / "runs" / "consensus-fast"
    card = export_run(run, tmp_path / "last", "fast-last", last_epoch=True)
    assert card.record is not None
    assert card.record.training.epoch_choice == "last" and card.record.training.best_epoch == 1
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
    exported = load_file(tmp_path / "last" / "fast-last.safetensors")
    for name, tensor in last_epoch_weights(checkpoint).items():
        assert torch.equal(exported[name], tensor), name


def test_recipe_refuses_a_stage_that_cannot_meet_the_deadline(voted_tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "recipe"
    with pytest.raises(emolens.InvalidOptionError, match=r"stage consensus-default needs about \d+ min .* not started"):
        run_recipe(
            str(voted_tiny / "train"),
            str(voted_tiny / "val"),
            out,
            device="cpu",
            stages=["default"],
            teacher="large",
            epochs=30,
            deadline=time.time() + 60,
        )
    assert not (out / "runs" / "consensus-default").exists()


def test_stage_plan_reads_a_resumed_runs_own_epochs(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"")
    (run / "log.json").write_text(json.dumps([{"epoch": 1, "seconds": 100.0}, {"epoch": 2, "seconds": 120.0}]))
    plan = plan_stage(TrainConfig("train", "val", str(run), model="fast", epochs=5), "fast")
    assert (plan.epochs_left, plan.seconds_per_epoch, plan.measured_from) == (3, 110.0, "finished epochs")
    assert plan.seconds == 330.0
