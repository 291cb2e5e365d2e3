"""The training pipeline on a few hundred real FER2013 images: runs, logs, resumes exactly."""

import itertools
import shlex
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from emolens import DatasetError, InvalidOptionError, WeightsError
from emolens.models import MODELS
from emolens.training import TrainConfig, load_dataset, load_fer2013_csv, train

pytestmark = pytest.mark.slow  # trains models, including a 2-process DDP run: `pytest -m 'not slow'` skips it


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, shared: Path) -> Path:
    """A 7-class folder of 40 train images per class, read from ../shared at test time."""
    root = tmp_path_factory.mktemp("tiny")
    source = shared / "datasets" / "fer2013" / "train"
    for folder in sorted(source.iterdir()):
        (root / folder.name).mkdir()
        for file in sorted(folder.glob("*.jpg"))[:40]:
            (root / folder.name / file.name).write_bytes(file.read_bytes())
    return root


def _config(tiny: Path, out: Path, epochs: int, **options: Any) -> TrainConfig:
    return TrainConfig(
        train_data=str(tiny), val_data=str(tiny), out_dir=str(out), epochs=epochs, batch_size=32, threads=1, **options
    )


def test_train_logs_checkpoints_and_exports(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    result = train(_config(tiny, tmp_path, epochs=1))
    # on a terminal the progress line rewrites itself (loss, accuracy, learning rate, ETA), then ends
    assert "\r\x1b[Kepoch 1/1 step 5/8 loss " in terminal.getvalue()
    assert " eta 0.0 min\nepoch 1: train acc " in terminal.getvalue()
    assert (tmp_path / "checkpoint.pt").is_file() and (tmp_path / "best.safetensors").is_file()
    assert "val_acc" in (tmp_path / "log.csv").read_text().splitlines()[0]
    assert len(result.history) == 1 and 0 <= result.best_val_accuracy <= 1


@pytest.mark.parametrize(
    ("optimizer", "schedule", "mixing"),
    [("sgd", "onecycle", {}), ("adamw", "cosine", {}), ("sgd", "cosine", {"mixup": 0.2, "cutmix": 1.0})],
)
def test_resume_continues_bit_for_bit(
    tiny: Path, tmp_path: Path, optimizer: str, schedule: str, mixing: dict[str, float]
) -> None:
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    options: dict[str, Any] = {"optimizer": optimizer, "schedule": schedule, **mixing}
    config = _config(tiny, straight, epochs=2, **options)
    result = train(config)
    assert config.lr is not None and result.history[-1]["lr"] < 0.02 * config.lr  # both schedules end near zero
    train(_config(tiny, resumed, epochs=2, **options), stop_after=1)  # "killed" after epoch 1 ...
    assert len((resumed / "log.csv").read_text().splitlines()) == 2
    train(_config(tiny, resumed, epochs=2, **options), resume=True)  # ... and resumed
    a = load_file(str(straight / "best.safetensors"))
    b = load_file(str(resumed / "best.safetensors"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    import torch

    from emolens.models import last_epoch_weights

    last = [last_epoch_weights(torch.load(run / "checkpoint.pt", weights_only=True)) for run in (straight, resumed)]
    assert all(torch.equal(last[0][k], last[1][k]) for k in last[0])  # the resumed epoch itself, best or not
    assert (straight / "log.csv").read_text().count("\n") == (resumed / "log.csv").read_text().count("\n") == 3
    with pytest.raises(InvalidOptionError, match=r"different configuration: epochs 2 \(now 3\)"):
        train(_config(tiny, resumed, epochs=3, **options), resume=True)  # a changed schedule must not mix
    with pytest.raises(InvalidOptionError, match="different configuration"):
        other = "sgd" if optimizer == "adamw" else "adamw"
        train(_config(tiny, resumed, epochs=2, optimizer=other, schedule=schedule), resume=True)


@pytest.mark.parametrize("mixer", ["mixup", "cutmix"])
def test_mixed_images_learn_the_mixed_targets(mixer: str) -> None:
    """Image i is filled with the value i and its target is class i: after mixing, each image's mean value
    must equal the expected class of its new target, so pixels and targets were mixed in the same proportion."""
    import torch

    from emolens import training

    mix = getattr(training, mixer)
    images = torch.arange(7, dtype=torch.float32).view(7, 1, 1, 1).expand(7, 1, 48, 48).contiguous()
    targets = torch.eye(7)
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    moved = 0
    for _ in range(20):
        mixed, mixed_targets = mix(images, targets, 1.0, gen)
        assert mixed.shape == images.shape and mixed_targets.shape == targets.shape
        assert torch.allclose(mixed_targets.sum(1), torch.ones(7))
        expected = mixed_targets @ torch.arange(7, dtype=torch.float32)
        assert torch.allclose(mixed.mean((1, 2, 3)), expected, atol=1e-5)
        moved += int((mixed != images).any())
        if mixer == "cutmix":  # a pasted box: every pixel comes from one of the two images, unblended
            assert set(torch.unique(mixed).tolist()) <= set(range(7))
    assert moved >= 15  # it mixes (a Beta(1, 1) weight is rarely so close to 1 that nothing changes)


def test_a_finished_run_is_not_trained_over_and_bad_settings_fail_before_the_data_is_read(
    tiny: Path, tmp_path: Path
) -> None:
    """A second `emolens train` into a run folder replaced its weights and log silently; a CUDA device on a CPU
    machine and options the architecture refuses failed after the data was loaded, as exceptions the CLI
    reported as bugs in emolens."""
    run = tmp_path / "run"
    train(_config(tiny, run, epochs=1))
    weights = (run / "best.safetensors").read_bytes()
    with pytest.raises(InvalidOptionError, match=r"already holds a training run \(checkpoint.pt, best.safetensors\)"):
        train(_config(tiny, run, epochs=1, model="fast"))
    (run / "checkpoint.pt").rename(tmp_path / "checkpoint.pt")  # best weights that cannot be resumed from
    with pytest.raises(InvalidOptionError, match=r"no checkpoint\.pt to resume from"):
        train(_config(tiny, run, epochs=1), resume=True)
    assert (run / "best.safetensors").read_bytes() == weights
    missing = tmp_path / "no-such-data"  # nothing is read before these are refused
    with pytest.raises(InvalidOptionError, match="cannot be built with options"):
        train(_config(missing, tmp_path / "a", epochs=1, model_options={"nope": 1}))
    if not torch.cuda.is_available():
        with pytest.raises(InvalidOptionError, match="no CUDA GPU"):
            train(_config(missing, tmp_path / "b", epochs=1, device="cuda"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_vote_tables_named_explicitly_must_exist_and_be_used(tmp_path: Path, shared: Path) -> None:
    """--ferplus-train nope.csv trained on as if it were not there (and so did any table with the original
    labels as targets); both are refused before the data is read."""
    votes = shared / "datasets" / "fer2013" / "ferplus" / "train.csv"
    missing = tmp_path / "no-such-data"
    with pytest.raises(DatasetError, match=r"--ferplus-train .*nope\.csv: no such file"):
        train(_config(missing, tmp_path / "a", epochs=1, ferplus_train=str(tmp_path / "nope.csv")))
    with pytest.raises(InvalidOptionError, match="with --targets original it would be ignored"):
        train(_config(missing, tmp_path / "b", epochs=1, ferplus_train=str(votes)))


def test_resume_refuses_changed_training_data(tiny: Path, tmp_path: Path) -> None:
    import shutil

    data, run = tmp_path / "data", tmp_path / "run"
    shutil.copytree(tiny, data)
    train(_config(data, run, epochs=2), stop_after=1)
    next((data / "happy").iterdir()).unlink()  # same paths and options, one image fewer
    with pytest.raises(DatasetError, match=r"training data in .* changed since"):
        train(_config(data, run, epochs=2), resume=True)


def test_schedules_warm_up_peak_and_decay() -> None:
    import torch

    from emolens.training import build_optimizer, build_schedule

    for name, peak_step in (("onecycle", 200), ("cosine", 50)):
        optimizer = build_optimizer("sgd", [torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9, weight_decay=0)
        schedule = build_schedule(name, optimizer, lr=0.1, total_steps=1000)
        lrs = []
        for _ in range(1000):
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            schedule.step()
        assert lrs[0] < 0.01 and max(lrs) == pytest.approx(0.1) and lrs[-1] < 1e-3, name
        assert abs(int(np.argmax(lrs)) - peak_step) <= 1, name
        assert all(a >= b for a, b in itertools.pairwise(lrs[peak_step:])), name


def test_optimizer_defaults_and_names(capsys: pytest.CaptureFixture[str]) -> None:
    from emolens import UnknownNameError
    from emolens.cli import main
    from emolens.training import DEFAULT_LR, DEFAULT_WEIGHT_DECAY, OPTIMIZERS, SCHEDULES

    adamw = TrainConfig("train", "val", "out", optimizer="adamw")
    assert (adamw.lr, adamw.weight_decay) == (DEFAULT_LR["adamw"], DEFAULT_WEIGHT_DECAY["adamw"])
    assert TrainConfig("train", "val", "out", optimizer="adamw", lr=1e-3).lr == 1e-3
    sgd = TrainConfig("train", "val", "out")
    assert (sgd.lr, sgd.weight_decay) == (0.05, 5e-4)  # what every shipped model was trained with
    for option, value, close in (("optimizer", "adam", "adamw"), ("schedule", "step", None)):
        with pytest.raises(UnknownNameError, match=f"unknown {option} '{value}'") as info:
            TrainConfig("train", "val", "out", **{option: value})
        assert info.value.suggestions == ((close,) if close else ())  # spelling suggestions, none when nothing is close
    # the CLI (which must not import torch for --help) offers the same names and states the same defaults
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "{" + ",".join(OPTIMIZERS) + "}" in text and "{" + ",".join(SCHEDULES) + "}" in text
    for name in OPTIMIZERS:
        assert f"{DEFAULT_LR[name]} for {name}" in text and f"{DEFAULT_WEIGHT_DECAY[name]} for {name}" in text


def test_a_shipped_model_becomes_its_unshifted_teacher_again(tiny: Path, tmp_path: Path) -> None:
    """unshift_card takes a prior-shifted float16 export back to the run's own scores: the weights of an
    export without the shift, to float16 rounding, and a card that says so and loads."""
    import argparse

    from tools.prior_shift import _member

    from emolens.errors import DatasetError
    from emolens.models import ModelCard
    from emolens.training import export_run, unshift_card
    from emolens.weights import sha256_of

    run = tmp_path / "run"
    train(_config(tiny, run, epochs=1))
    export_run(run, tmp_path / "plain", "plain", last_epoch=True)
    export_run(run, tmp_path / "shipped", "shipped", last_epoch=True, prior_shift=0.5, half=True)
    teacher = unshift_card(tmp_path / "shipped" / "shipped.json", tmp_path / "teacher", "teacher")
    plain = load_file(str(tmp_path / "plain" / "plain.safetensors"))
    shipped = load_file(str(tmp_path / "shipped" / "shipped.safetensors"))
    unshifted = load_file(str(tmp_path / "teacher" / "teacher.safetensors"))
    assert plain.keys() == unshifted.keys() and all(unshifted[k].dtype == plain[k].dtype for k in plain)
    assert max(float(np.abs(shipped[k].astype(np.float32) - plain[k]).max()) for k in plain) > 0.1  # it was shifted
    assert all(np.allclose(unshifted[k], plain[k], rtol=1e-3, atol=5e-3) for k in plain)  # and is no longer
    assert teacher.record is not None and teacher.record.training.prior_shift is None
    assert teacher.record.weights_storage == "float32" and "unshift_card" in teacher.record.training.note
    card = ModelCard.read(tmp_path / "teacher" / "teacher.json")
    assert card.weights_sha256 == sha256_of(tmp_path / "teacher" / "teacher.safetensors")  # measured, not stale
    # tools/prior_shift scores the unshifted card beside run folders, and refuses a shifted one
    config, spec, weights = _member(tmp_path / "teacher" / "teacher.json", False, argparse.ArgumentParser())
    assert config["train_data"] == str(tiny) and spec.input_size == 48 and Path(str(weights)).is_file()
    with pytest.raises(SystemExit):
        _member(tmp_path / "shipped" / "shipped.json", False, argparse.ArgumentParser())
    with pytest.raises(DatasetError, match="records no prior shift"):  # nothing to take out of a plain export
        unshift_card(tmp_path / "plain" / "plain.json", tmp_path / "again", "again")


def test_distillation_from_a_model_and_a_run_folder(tiny: Path, tmp_path: Path) -> None:
    import dataclasses

    import torch

    from emolens.training import Teachers, distillation_loss

    teacher_run = tmp_path / "teacher"
    train(_config(tiny, teacher_run, epochs=1))
    teachers = Teachers(["default", str(teacher_run)], torch.device("cpu"))
    batch = torch.randn(8, 1, 48, 48)
    soft = teachers.probabilities(batch, temperature=2.0)
    assert soft.shape == (8, 7) and torch.allclose(soft.sum(1), torch.ones(8))
    logits = torch.log(soft) * 2.0  # a student that already matches the teachers at T=2 ...
    assert float(distillation_loss(logits, soft, 2.0)) == pytest.approx(0.0, abs=1e-5)
    assert float(distillation_loss(torch.zeros(8, 7), soft, 2.0)) > 0.01  # ... and one that does not

    cfg = dataclasses.replace(_config(tiny, tmp_path / "student", epochs=1), teachers=("default",), distill_weight=1.0)
    result = train(cfg)
    assert len(result.history) == 1 and np.isfinite(result.history[0]["train_loss"])
    with pytest.raises(WeightsError, match="run folder"):
        Teachers([str(tmp_path)], torch.device("cpu"))

    # a resumed run keeps its teachers: a teacher whose weights changed in between is refused, not swapped in
    cfg = dataclasses.replace(_config(tiny, tmp_path / "resumed", epochs=2), teachers=(str(teacher_run),))
    train(cfg, stop_after=1)
    best = teacher_run / "best.safetensors"
    original = best.read_bytes()
    train(dataclasses.replace(_config(tiny, tmp_path / "other", epochs=1), seed=1))
    best.write_bytes((tmp_path / "other" / "best.safetensors").read_bytes())
    with pytest.raises(InvalidOptionError, match=r"teacher '.*teacher' means other weights than when .* was written"):
        train(cfg, resume=True)
    # the same tensors under other metadata (a card measured again rewrites its temperatures) teach the same
    from safetensors.numpy import save_file

    best.write_bytes(original)
    save_file(load_file(str(best)), str(best), metadata={"note": "measured again"})
    assert best.read_bytes() != original
    assert len(train(cfg, resume=True).history) == 2
    # a checkpoint from before the tensors were hashed compares the whole file, as it did
    old = dataclasses.replace(cfg, out_dir=str(tmp_path / "old-checkpoint"))
    train(old, stop_after=1)
    state = torch.load(tmp_path / "old-checkpoint" / "checkpoint.pt", weights_only=True)
    del state["teacher_tensors"]
    torch.save(state, tmp_path / "old-checkpoint" / "checkpoint.pt")
    best.write_bytes(original)
    with pytest.raises(InvalidOptionError, match="means other weights"):
        train(old, resume=True)


def test_architecture_overrides_train_and_export_with_a_model_card(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from emolens.cli import main

    run, out = tmp_path / "run", tmp_path / "out"
    options = '{"widths": [8, 16, 32, 64, 128], "convs_per_stage": [1, 1, 1, 1, 1], "hidden": 32}'
    args = [str(tiny), str(tiny), "--out", str(run), "--epochs", "2", "--batch-size", "32", "--threads", "1"]
    assert main(["train", *args, "--model-options", options, "--stop-after", "1"]) == 0  # one session ...
    assert main(["train", *args, "--model-options", options, "--resume"]) == 0  # ... and the next
    assert main(["export", str(run), "--out", str(out), "--name", "tiny-v0", "--register-as", "tiny"]) == 0
    assert f"use it: emolens analyze IMAGE --model {out / 'tiny-v0.json'}" in capsys.readouterr().out
    card = json.loads((out / "tiny-v0.json").read_text())
    assert (card["registry_model"], card["trained_from"]) == ("tiny", "default")
    from safetensors import safe_open

    with safe_open(str(out / "tiny-v0.safetensors"), framework="pt") as handle:
        assert handle.metadata()["model"] == "tiny"  # the file names the model it ships as
    markdown = (out / "tiny-v0.md").read_text()
    assert "Registered as `tiny` (trained as a variant of the `default` architecture)" in markdown
    assert card["default_tta"] is MODELS.get("default").tta  # an unregistered name: the run's own model
    # shipping under a registered name calibrates and reports that model's TTA setting
    assert main(["export", str(run), "--out", str(out), "--name", "as-fast", "--register-as", "fast"]) == 0
    assert json.loads((out / "as-fast.json").read_text())["default_tta"] is MODELS.get("fast").tta is False
    assert card["architecture"]["options"]["widths"] == [8, 16, 32, 64, 128] and card["input_size"] == 48
    assert card["parameters"] < 120_000  # the small override, not the default architecture's 2.6M
    assert card["weights_bytes"] == (out / "tiny-v0.safetensors").stat().st_size
    assert set(card["metrics"]) == {"val", "val_tta", "train"} and card["val_images"] == 280
    # float32 storage changes nothing, so the run's weights score exactly what the shipped file scores
    assert card["val_accuracy_fp32_weights"] == card["metrics"]["val"]["accuracy"]
    assert "--model-options" in card["training_command"] and (out / "tiny-v0.md").is_file()
    # the command reproduces the run in one go: the flags that split it across sessions are left out
    assert "--resume" not in card["training_command"] and "--stop-after" not in card["training_command"]
    assert card["training_command"].endswith("--threads 1 --model-options " + shlex.quote(options))
    # a run folder evaluates before export exactly as the card measured it
    capsys.readouterr()
    for flag, key in (("--no-tta", "val"), ("--tta", "val_tta")):
        assert main(["evaluate", str(tiny), "--model", str(run), flag, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["accuracy"] == card["metrics"][key]["accuracy"]


def test_an_exported_model_is_used_by_the_path_of_its_card(
    tiny: Path, tmp_path: Path, shared: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import dataclasses
    import json
    import shutil

    import emolens
    from emolens.cli import main
    from emolens.models import spec_from_card
    from emolens.training import export_run, recalibrate_card

    run, out = tmp_path / "run", tmp_path / "out"
    train(dataclasses.replace(_config(tiny, run, epochs=1), model="fast"))
    card = export_run(run, out, "my-model")
    written = {f.name: f.read_bytes() for f in out.iterdir()}
    shutil.rmtree(run)  # the card and its weights alone are enough to measure the model again: same files
    assert recalibrate_card(out / "my-model.json").to_dict() == json.loads(written["my-model.json"])
    assert {f.name: f.read_bytes() for f in out.iterdir()} == written
    photo = shared / "images" / "group" / "multiface.jpg"
    by_path = emolens.analyze(photo, model=str(out / "my-model.json"))
    assert by_path.model == "my-model" and len(by_path.faces) >= 5
    with MODELS.temporary_changes():
        emolens.register_model(spec_from_card(out / "my-model.safetensors"))  # same card, by its weights
        by_name = emolens.analyze(photo, model="my-model")
    assert [f.probabilities for f in by_name.faces] == [f.probabilities for f in by_path.faces]
    # the command line takes the card too, and scores it exactly as the card says
    capsys.readouterr()
    assert main(["evaluate", str(tiny), "--model", str(out / "my-model.json"), "--json"]) == 0
    assert card.record is not None
    measured = card.record.metrics.default(card.tta)
    assert json.loads(capsys.readouterr().out)["accuracy"] == measured.accuracy
    assert main(["analyze", str(photo), "--model", str(out / "my-model.json"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["model"] == "my-model"
    # weights changed after export are refused; a missing or foreign card says what to pass
    tampered = tmp_path / "tampered"
    shutil.copytree(out, tampered)
    weights = tampered / "my-model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    with pytest.raises(emolens.WeightsIntegrityError, match="export it again"):
        emolens.Analyzer(model=str(tampered / "my-model.json"))
    with pytest.raises(emolens.WeightsUnavailableError, match="emolens export"):
        spec_from_card(tmp_path / "nothing.json")
    (tampered / "my-model.safetensors").unlink()
    with pytest.raises(emolens.WeightsUnavailableError, match=r"beside its \.json card"):
        emolens.Analyzer(model=str(tampered / "my-model.json"))
    (tmp_path / "other.json").write_text('{"name": "x"}')
    with pytest.raises(emolens.WeightsError, match=r"is it a card written by `emolens export`\?"):
        spec_from_card(tmp_path / "other.json")


def test_a_teacher_trained_at_another_input_size(tiny: Path, tmp_path: Path, shared: Path) -> None:
    """``--input-size 64`` trains, exports and analyses at 64x64, and teaches a 48x48 student (with flip TTA)."""
    import dataclasses
    import json

    import torch
    import torch.nn.functional as F

    import emolens
    from emolens import InputSpec
    from emolens.models import RunFolder
    from emolens.training import Teachers, export_run

    run = tmp_path / "run64"
    result = train(dataclasses.replace(_config(tiny, run, epochs=1), model="fast", init="fast", input_size=64))
    assert np.isfinite(result.history[0]["train_loss"])
    assert json.loads((run / "config.json").read_text())["input_size"] == 64 and RunFolder(run).spec().input_size == 64
    card = export_run(run, tmp_path / "out", "fast-64")
    assert card.input.size == 64 and json.loads((tmp_path / "out" / "fast-64.json").read_text())["input_size"] == 64
    faces = emolens.analyze(shared / "images" / "group" / "multiface.jpg", model=str(tmp_path / "out" / "fast-64.json"))
    assert len(faces.faces) >= 5 and all(abs(sum(f.probabilities) - 1) < 1e-4 for f in faces.faces)

    # a 48x48 student's batch reaches the 64x64 teacher resized, beside a 48x48 teacher that sees it as it is
    student_input = MODELS.get("default").input
    teachers = Teachers([str(run), "fast"], torch.device("cpu"), student_input=student_input)
    assert teachers.sizes == [64, 48]
    batch = torch.randn(4, 1, 48, 48)
    alone = Teachers([str(run)], torch.device("cpu"), student_input=student_input)
    resized = F.interpolate(batch, size=(64, 64), mode="bilinear", align_corners=False, antialias=True)
    with torch.inference_mode():
        expected = torch.softmax(alone.networks[0](resized).float() / 2.0, dim=1)
    assert torch.allclose(alone.probabilities(batch, 2.0), expected, atol=1e-2)  # bf16 autocast where native
    assert teachers.probabilities(batch, 2.0).shape == (4, 7)
    # --teacher-tta mirrors the teachers whose model ships with flip TTA (default), not the others (fast's run)
    mirrored = Teachers([str(run), "default"], torch.device("cpu"), student_input=student_input, tta=True)
    assert mirrored.mirrored == [False, True] and MODELS.get("default").tta and not MODELS.get("fast").tta
    plain = Teachers(["default"], torch.device("cpu"), student_input=student_input)
    with torch.inference_mode():
        both = plain.networks[0](torch.cat([batch, batch.flip(-1)])).float()
    expected_default = torch.softmax((both[:4] + both[4:]) / 2 / 2.0, dim=1)  # mean of the two views' logits, T=2
    assert torch.allclose(mirrored.probabilities(batch, 2.0), (expected + expected_default) / 2, atol=1e-2)
    assert not torch.allclose(plain.probabilities(batch, 2.0), expected_default, atol=1e-4)
    student = dataclasses.replace(
        _config(tiny, tmp_path / "student", epochs=1), model="fast", teachers=(str(run),), teacher_tta=True
    )
    assert np.isfinite(train(student).history[0]["train_loss"])
    with pytest.raises(InvalidOptionError, match="--teacher-tta needs at least one --teacher"):
        dataclasses.replace(_config(tiny, tmp_path / "x", epochs=1), teacher_tta=True)
    for option, value in [("mixup", -0.2), ("cutmix", float("nan")), ("lr", 0.0), ("weight_decay", -1e-4)]:
        with pytest.raises(InvalidOptionError, match="must be a finite number"):  # the CLI's check, for Python callers
            dataclasses.replace(_config(tiny, tmp_path / "x", epochs=1), **{option: value})
    with pytest.raises(InvalidOptionError, match="input size 16 is smaller than the 32 pixels that 5 stages halve"):
        train(dataclasses.replace(_config(tiny, tmp_path / "x", epochs=1), model="fast", input_size=16))
    with pytest.raises(InvalidOptionError, match="differs from the student's in size at most"):
        Teachers(
            [str(run)],
            torch.device("cpu"),
            student_input=InputSpec(size=48, color="rgb", mean=(0.5,) * 3, std=(0.5,) * 3),
        )


def test_a_finished_run_keeps_its_architecture_when_the_registry_changes(tiny: Path, tmp_path: Path) -> None:
    import dataclasses
    import json

    import torch

    from emolens.training import Teachers, export_run

    run = tmp_path / "run"
    train(dataclasses.replace(_config(tiny, run, epochs=1), model="fast"))
    pinned = json.loads((run / "config.json").read_text())["architecture_options"]
    assert pinned["widths"] == list(MODELS.get("fast").options["widths"])
    with MODELS.temporary_changes():  # a later release changed what "fast" means: the run still loads as trained
        MODELS.register(dataclasses.replace(MODELS.get("fast"), options={"widths": (8, 16, 32, 64)}), overwrite=True)
        assert Teachers([str(run)], torch.device("cpu")).probabilities(torch.randn(2, 1, 48, 48), 1.0).shape == (2, 7)
        card = export_run(run, tmp_path / "out", "old-fast")
        assert card.options["widths"] == pinned["widths"]


def test_bad_model_options_are_usage_errors(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from emolens.cli import main

    for bad in ("{widths: 1}", "[1, 2]"):
        with pytest.raises(SystemExit) as exc:
            main(["train", str(tiny), str(tiny), "--out", str(tmp_path), "--model-options", bad])
        assert exc.value.code == 2
    assert "JSON object" in capsys.readouterr().err


def test_resume_accepts_checkpoints_from_before_new_options(tiny: Path, tmp_path: Path) -> None:
    import torch

    train(_config(tiny, tmp_path, epochs=2), stop_after=1)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    newer = ("teachers", "distill_weight", "distill_temperature", "optimizer", "schedule", "skip_unreadable")
    newer += ("input_size", "teacher_tta")
    for key in newer:  # options an older emolens did not write
        del state["config"][key]
    torch.save(state, tmp_path / "checkpoint.pt")
    assert len(train(_config(tiny, tmp_path, epochs=2), resume=True).history) == 2


def test_a_run_from_before_input_sizes_keeps_reading_48x48(tiny: Path, tmp_path: Path) -> None:
    """`large` read 64x64 crops from v2 (and is a 96x96 ensemble since v3): a run of its VGG that pinned no input
    size was trained at 48x48, and loads, resumes and exports at 48x48; a new run without --input-size follows the
    release it names."""
    import dataclasses
    import json

    import torch

    from emolens import load_model
    from emolens.models import RunFolder, run_spec
    from emolens.training import export_run

    assert run_spec(dataclasses.asdict(_config(tiny, tmp_path / "new", epochs=1, model="large@v2"))).input_size == 64
    old = _config(tiny, tmp_path / "old", epochs=2, model="large@v2", input_size=48)
    train(old, stop_after=1)
    config_file, checkpoint_file = tmp_path / "old" / "config.json", tmp_path / "old" / "checkpoint.pt"
    config = json.loads(config_file.read_text())
    del config["input_size"]  # as an emolens from before --input-size wrote them
    config_file.write_text(json.dumps(config))
    state = torch.load(checkpoint_file, weights_only=True)
    del state["config"]["input_size"], state["config"]["teacher_tta"]
    torch.save(state, checkpoint_file)
    assert RunFolder(tmp_path / "old").spec().input_size == 48
    assert load_model(str(tmp_path / "old")).input_size == 48
    export_run(str(tmp_path / "old"), str(tmp_path / "out"), name="old-large", last_epoch=True)
    assert json.loads((tmp_path / "out" / "old-large.json").read_text())["input"]["size"] == 48
    resumed = train(dataclasses.replace(old, input_size=None), resume=True)
    assert len(resumed.history) == 2 and json.loads(config_file.read_text())["input_size"] == 48
    config_file.unlink()  # nothing left says which network the checkpoint holds: refused, not guessed
    with pytest.raises(WeightsError, match=r"config\.json"):
        train(dataclasses.replace(old, epochs=3, input_size=None), resume=True)


def test_unknown_class_folder_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "happy").mkdir()
    (tmp_path / "bored").mkdir()
    with pytest.raises(DatasetError, match="bored"):
        load_dataset(tmp_path)


def test_unreadable_images_are_skipped_or_fatal(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    from emolens.cli import main

    copy = tmp_path / "copy"
    shutil.copytree(tiny, copy)
    (copy / "sad" / "broken.jpg").write_bytes(b"nope")
    assert load_dataset(copy).skipped == 1
    with pytest.raises(DatasetError, match=r"broken\.jpg"):
        load_dataset(copy, skip_unreadable=False)
    with pytest.raises(DatasetError, match=r"broken\.jpg"):
        train(_config(copy, tmp_path / "run", epochs=1, skip_unreadable=False))
    # the same choice on the command line: skip and count by default, stop with --strict-data
    assert main(["evaluate", str(copy), "--model", "fast"]) == 0
    assert "skipped 1 unreadable images" in capsys.readouterr().out
    assert main(["evaluate", str(copy), "--model", "fast", "--strict-data"]) == 2
    assert "broken.jpg" in capsys.readouterr().err


def test_kaggle_csv(tmp_path: Path) -> None:
    pixels = " ".join(["128"] * 48 * 48)
    csv = tmp_path / "fer2013.csv"
    csv.write_text(f"emotion,pixels,Usage\n3,{pixels},Training\n5,{pixels},PublicTest\n0,{pixels},Training\n")
    data = load_fer2013_csv(csv, "train")
    assert data.images.shape == (2, 48, 48) and data.labels.tolist() == [3, 0]
    assert load_fer2013_csv(csv, "val").labels.tolist() == [5]
    csv.write_text(f"emotion,pixels,Usage\n3,{pixels},Training\n9,{pixels},Training\n0,1 2 3,Training\n")
    assert load_fer2013_csv(csv).skipped == 2  # label 9, and 3 pixels (not a square image)
    with pytest.raises(DatasetError, match=":3: malformed row"):
        load_fer2013_csv(csv, skip_unreadable=False)
    csv.write_text("label,image\n")
    with pytest.raises(DatasetError, match="lacks column"):
        load_fer2013_csv(csv)


def _calibrated_predictions(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and perfectly calibrated probabilities: with this generating process the true posterior is
    softmax(1.5 * logits)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 7, n)
    logits = rng.normal(size=(n, 7))
    logits[np.arange(n), labels] += 1.5
    return labels, np.exp(1.5 * logits) / np.exp(1.5 * logits).sum(1, keepdims=True)


def test_temperature_scaling_fixes_overconfidence() -> None:
    from emolens.training import apply_temperature, cross_fitted_ece, expected_calibration_error, fit_temperature

    labels, calibrated = _calibrated_predictions(4000, seed=0)
    overconfident = apply_temperature(calibrated, 1 / 3)  # logits x3
    assert expected_calibration_error(overconfident, labels) > 0.15
    assert fit_temperature(overconfident, labels) == pytest.approx(3.0, rel=0.1)
    report = cross_fitted_ece(overconfident, labels, splits=2)
    assert report["ece_cross_fitted_temperature"] < 0.03 < report["ece_uncalibrated"]


def test_per_class_temperatures_fix_opposite_miscalibration() -> None:
    """Over-confident on some predicted classes and under-confident on others: one temperature cannot fix both."""
    from emolens.training import apply_temperatures, choose_calibration, cross_fitted_ece, fit_calibrations

    labels, calibrated = _calibrated_predictions(6000, seed=1)
    true_temperatures = (1 / 3, 1 / 3, 1 / 3, 2.0, 2.0, 2.0, 2.0)  # rows predicting 0-2 sharpened, 3-6 flattened
    skewed = apply_temperatures(calibrated, true_temperatures)
    assert (skewed.argmax(1) == calibrated.argmax(1)).all(), "a row's temperature never changes its prediction"
    calibrations = fit_calibrations(skewed, labels)
    assert list(calibrations) == ["none", "temperature", "per-class"]
    fitted = calibrations["per-class"]
    assert fitted == pytest.approx([1 / t for t in true_temperatures], rel=0.15)
    assert calibrations["none"] == (1.0,) * 7
    assert len(set(calibrations["temperature"])) == 1, "one temperature for every predicted class"
    report = cross_fitted_ece(skewed, labels, splits=2)
    # per-class temperatures reach the noise floor of ECE on 3,000 rows (~0.025 for calibrated data); one cannot
    assert report["ece_cross_fitted_per_class"] < 0.03 and report["ece_cross_fitted_temperature"] > 0.15
    chosen = choose_calibration(skewed, labels, splits=2)
    assert chosen.method == "per-class" and chosen.ece == report["ece_cross_fitted_per_class"]
    assert chosen.temperatures == pytest.approx(fitted, abs=1e-4)  # stored rounded to 4 decimals
    # already calibrated probabilities: whatever is chosen stays close to leaving them alone
    honest = choose_calibration(calibrated, labels, splits=2)
    assert honest.ece <= honest.report["ece_uncalibrated"] < 0.03
    assert honest.temperatures == pytest.approx([1.0] * 7, rel=0.1)


def test_distributed_training_with_two_cpu_processes(tiny: Path, tmp_path: Path) -> None:
    """The same `emolens train` command under torchrun: 2 local processes, gloo backend."""
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "emolens.cli", "train", str(tiny), str(tiny), "--out", str(out),
        "--epochs", "2", "--batch-size", "16", "--threads", "1",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (out / "log.csv").read_text().splitlines()
    assert len(log) == 3  # header + 2 epochs, written once (by process 0)
    state = __import__("torch").load(out / "checkpoint.pt", weights_only=True)
    assert state["world"] == 2 and state["epoch"] == 2
    assert (out / "best.safetensors").is_file()


def test_a_network_in_training_is_measured_in_inference_mode_and_left_as_it_was(fer_val: Path) -> None:
    """Validation during training goes through EmotionModel.from_network: BatchNorm must use its running
    statistics (not the batch's) and must not learn them from the data being measured."""
    import cv2
    import torch

    from emolens.models import EmotionModel, build_model
    from emolens.weights import fetch

    from .conftest import fer_samples

    spec = MODELS.get("fast")
    network = build_model(spec, fetch(spec.weights[0]))
    files, _ = fer_samples(fer_val, 4)
    crops = [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files]
    expected = EmotionModel.from_network(spec, network.eval()).predict(crops)
    network.train()
    before = {k: v.clone() for k, v in network.state_dict().items()}
    measured = EmotionModel.from_network(spec, network).predict(crops)
    assert network.training, "the caller's mode is restored"
    assert all(torch.equal(before[k], v) for k, v in network.state_dict().items()), "running statistics unchanged"
    assert np.abs(measured - expected).max() < 1e-6
    assert (measured.argmax(1) == expected.argmax(1)).all()
