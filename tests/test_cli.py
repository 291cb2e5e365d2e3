"""The emolens command, run as a real subprocess where the exit code and stderr matter."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import emolens
from emolens.cli import main


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emolens", *args], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )


def test_analyze_json_lists_the_six_faces(photos: Path) -> None:
    proc = run("analyze", str(photos / "dlib-faces" / "2008_002470.jpg"), "--json")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert len(record["faces"]) == 6
    assert all(face["emotion"] in record["faces"][0]["probabilities"] for face in record["faces"])
    # which weights answered: the current default's file and hash, and the detector's
    from emolens import load_model

    assert record["model"] == "default" and record["model_id"] == load_model("default").identity
    assert record["detector_id"].startswith("yunet@")
    pinned = run("analyze", str(photos / "dlib-faces" / "2008_002470.jpg"), "--json", "--model", record["model_id"])
    assert json.loads(pinned.stdout)["faces"] == record["faces"]  # the recorded identity gives the same answers


def test_analyze_a_name_too_long_is_one_failed_input_not_the_end_of_the_run(photos: Path) -> None:
    """`emolens analyze photo.jpg <300 characters>.jpg` stopped at the long name, photo.jpg unanalysed."""
    proc = run("analyze", str(photos / "dlib-faces" / "2008_002470.jpg"), "a" * 300 + ".jpg", "--json")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert len(json.loads(proc.stdout.splitlines()[0])["faces"]) == 6
    assert json.loads(proc.stdout.splitlines()[1])["error"]["message"].endswith("File name too long")


def test_analyze_passes_detector_options(photos: Path) -> None:
    image = str(photos / "dlib-faces" / "2008_002470.jpg")
    proc = run(
        "analyze", image, "--json", "--no-fallback", "--detector", "yunet", "--detector-options", '{"max_side": 48}'
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["faces"] == []  # six faces, none findable on a 48-pixel copy
    proc = run("analyze", image, "--detector-options", "[320]")
    assert proc.returncode == 2 and "expected a JSON object" in proc.stderr


def test_analyze_table_folder_glob_and_annotate(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["analyze", str(photos / "group"), str(photos / "dlib-faces" / "2008_00247*.jpg"), "--annotate", str(tmp_path)]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "multiface.jpg" in out and "6 faces" in out and "2008_002470.jpg" in out
    # annotated copies keep the folders below the inputs' common folder
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.jpg"))
    assert written == ["dlib-faces/2008_002470.jpg", "group/multiface.jpg"]


def test_analyze_a_folder_finds_gif_images_too(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder is searched for every format emolens decodes, GIF included (it was skipped without a word)."""
    from PIL import Image

    Image.open(photos / "group" / "multiface.jpg").convert("RGB").save(tmp_path / "group.gif")
    assert main(["analyze", str(tmp_path)]) == 0
    assert "group.gif" in capsys.readouterr().out


def test_max_megapixels_bounds_images_and_names_itself_in_the_advice(
    photos: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The refusal of a too-large image tells a CLI user the option that raises the limit, and the option works."""
    image = str(photos / "dlib-faces" / "2008_002470.jpg")  # 500x375 pixels
    assert main(["analyze", image, "--max-megapixels", "0.1"]) == 1
    line = capsys.readouterr().err
    assert "over the limit of 0.1 megapixels" in line and "pass a larger --max-megapixels" in line
    assert main(["analyze", image, "--json", "--max-megapixels", "0.1"]) == 1
    record = json.loads(capsys.readouterr().out)
    assert record["error"]["type"] == "ImageTooLargeError" and "--max-megapixels" in record["error"]["message"]
    assert main(["analyze", image, "--json", "--max-megapixels", "0.19"]) == 0
    assert len(json.loads(capsys.readouterr().out)["faces"]) == 6


def test_bad_inputs_give_one_line_errors_and_nonzero_exit(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8 not really a jpeg")
    for args, message in [
        (["analyze", str(tmp_path / "missing.jpg")], "image file not found"),
        (["analyze", str(corrupt)], "cannot decode"),
        (["analyze", str(tmp_path / "*.png")], "no images match"),
        (["analyze", ""], "no images match ''"),  # not the current folder, which Path("") would be
        (["analyze", str(corrupt), "--detector", "yunte"], "Did you mean 'yunet'?"),
        (["analyze", str(corrupt), "--model", "nope"], "unknown model 'nope'"),
        (["download"], "--all"),
        (["evaluate", str(tmp_path), "--model", str(tmp_path)], "not a finished `emolens train` run folder"),
        (["evaluate", str(tmp_path), "--confusion-png", "/no/such/dir/c.png"], "folder /no/such/dir does not exist"),
    ]:
        proc = run(*args)
        assert proc.returncode != 0, args
        assert "Traceback" not in proc.stderr
        assert message in proc.stderr, (args, proc.stderr)
        assert proc.stderr.startswith("emolens: error:")


def test_a_corrupt_file_gives_one_line_without_opencv_or_ffmpeg_logs(photos: Path, tmp_path: Path) -> None:
    """OpenCV logs four lines of its own about a truncated TIFF, FFmpeg one about a fake MP4: the command's
    stderr is emolens' one line only (an OPENCV_LOG_LEVEL the user sets still wins)."""
    import io

    from PIL import Image

    encoded = io.BytesIO()
    Image.open(photos / "group" / "multiface.jpg").save(encoded, format="TIFF")
    half = tmp_path / "half.tiff"
    half.write_bytes(encoded.getvalue()[: len(encoded.getvalue()) // 2])
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"not a video at all")
    for args in (["analyze", str(half)], ["video", str(fake)]):
        proc = run(*args)
        assert proc.returncode != 0 and proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stderr.startswith("emolens: error:")
    assert "TIFF" in run("analyze", str(half), env={"OPENCV_LOG_LEVEL": "WARNING"}).stderr.split("emolens:")[0]


def test_bad_numeric_options_are_usage_errors(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    for args, message in [
        (["video", str(video), "--every", "0"], "must be at least 1"),
        (["video", str(video), "--smoothing", "1.5"], "must be in [0, 1)"),
        (["analyze", str(video), "--max-megapixels", "0"], "must be more than 0"),
        (
            ["train", str(tmp_path), str(tmp_path), "--out", str(tmp_path), "--epochs", "zero"],
            "expected a whole number",
        ),
        (["train", str(tmp_path), str(tmp_path), "--out", str(tmp_path), "--mixup", "-1"], "must be 0 or more"),
        (["train", str(tmp_path), str(tmp_path), "--out", str(tmp_path), "--cutmix", "nan"], "a finite number"),
        (["train", str(tmp_path), str(tmp_path), "--out", str(tmp_path), "--lr", "0"], "must be more than 0"),
    ]:
        proc = run(*args)
        assert proc.returncode == 2, args
        assert "Traceback" not in proc.stderr
        assert message in proc.stderr, (args, proc.stderr)


def test_offline_without_weights_is_one_line(tmp_path: Path, photos: Path) -> None:
    image = str(photos / "dlib-faces" / "2008_002470.jpg")
    offline = {"EMOLENS_HOME": str(tmp_path), "EMOLENS_OFFLINE": "1"}
    proc = run("analyze", image, "--detector", "retinaface-mobilenet", env=offline)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "emolens download" in proc.stderr
    # YuNet ships in the wheel: the default detector needs no download, offline or not
    proc = run("analyze", image, "--json", env=offline)
    assert proc.returncode == 0 and json.loads(proc.stdout)["detector"] == "yunet" and proc.stderr == ""


def test_detector_none_for_face_crops(fer_val: Path, capsys: pytest.CaptureFixture[str]) -> None:
    face = next((fer_val / "happy").glob("*.jpg"))
    assert main(["analyze", str(face), "--detector", "none", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["detector"] == "none" and record["faces"][0]["box"] == {"x": 0, "y": 0, "width": 48, "height": 48}


def test_models_lists_weights_status(capsys: pytest.CaptureFixture[str], seeded_home: Path) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "yunet" in out and "bundled" in out and "haar" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and line.split()}
    assert "no weights needed" in rows["haar"]
    assert "package downloads" in rows["retinaface"]  # retina-face fetches retinaface.pth: not "no weights needed"
    # the session's cache is seeded from ../shared/weights; without it nothing is cached
    assert ("cached" in out) == any(seeded_home.iterdir())


def test_download_through_a_mirror(empty_home: Path, shared: Path, monkeypatch, serve, capsys) -> None:
    monkeypatch.setenv("EMOLENS_MIRROR", serve(shared / "weights"))
    assert main(["download", "retinaface-mobilenet"]) == 0
    assert (empty_home / "detection_mobilenet0.25_Final.pth").is_file()
    # --all tries every file and reports each; the ones the mirror lacks fail without stopping the others
    assert main(["download", "--all"]) == 2
    out = capsys.readouterr().out
    assert "hsemotion-b0-va: FAILED" in out and "dlib-cnn: " in out and "yunet: " in out
    assert (empty_home / "mmod_human_face_detector.dat").is_file()


def test_evaluate_refuses_tta_and_no_tta_together(capsys) -> None:
    """Both were accepted, the last one silently winning."""
    with pytest.raises(SystemExit) as stopped:
        main(["evaluate", "data", "--tta", "--no-tta"])
    assert stopped.value.code == 2 and "not allowed with argument --tta" in capsys.readouterr().err


def test_evaluate_refuses_split_for_a_folder(fer_val: Path, capsys) -> None:
    """--split picks rows of a FER2013 CSV; on a folder it was silently ignored (all images evaluated)."""
    assert main(["evaluate", str(fer_val), "--split", "test"]) == 2
    err = capsys.readouterr().err
    assert "--split picks rows of a FER2013 CSV" in err and "Traceback" not in err


def test_evaluate_on_a_small_folder(fer_val: Path, tmp_path: Path, capsys) -> None:
    subset = tmp_path / "subset"
    for folder in fer_val.iterdir():
        (subset / folder.name).mkdir(parents=True)
        for file in sorted(folder.glob("*.jpg"))[:10]:
            (subset / folder.name / file.name).write_bytes(file.read_bytes())
    predictions = tmp_path / "pred.csv"
    assert main(["evaluate", str(subset), "--json", "--predictions", str(predictions)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["count"] == 70
    assert 0.3 < metrics["accuracy"] <= 1
    lines = predictions.read_text().splitlines()
    assert lines[0].split(",")[:3] == ["file", "true", "predicted"] and len(lines) == 71
    # an ensemble scores the mean of its members' probabilities
    from emolens.training import evaluate_model

    assert main(["evaluate", str(subset), "--model", "default", "--model", "fast", "--json"]) == 0
    ensemble = json.loads(capsys.readouterr().out)
    members = [evaluate_model(name, str(subset))[1] for name in ("default", "fast")]
    expected = (np.mean(members, axis=0).argmax(1) == evaluate_model("fast", str(subset))[2].labels).mean()
    assert ensemble["model"] == "default + fast" and ensemble["accuracy"] == pytest.approx(expected)
    # --tta-margin 1 mirrors every face, as the cards measure: the predictions of evaluate_model with it
    every_face = tmp_path / "every.csv"
    assert main(["evaluate", str(subset), "--tta-margin", "1", "--predictions", str(every_face)]) == 0
    capsys.readouterr()
    model = emolens.load_model("default").with_options(tta_margin=1.0)
    full = evaluate_model(model, str(subset))[1]
    rows = [line.split(",") for line in every_face.read_text().splitlines()[1:]]
    assert np.allclose([[float(v) for v in row[3:]] for row in rows], full, atol=1e-5)
    assert main(["evaluate", str(subset), "--tta-margin", "0.2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tta_margin"] == 0.2  # the record says what made it
    assert main(["evaluate", str(subset), "--tta-margin", "1", "--no-tta"]) == 2
    assert "pass one of them" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        main(["evaluate", str(subset), "--tta-margin", "2"])
    assert stopped.value.code == 2 and "must be from 0 to 1" in capsys.readouterr().err
    assert main(["evaluate", str(subset), "--confusion-png", str(tmp_path / "confusion.png")]) == 0
    assert "per-class recall" in capsys.readouterr().out
    # calibration measured as export does it: on the model's own probabilities, each half fitted on the other
    assert main(["evaluate", str(subset), "--model", "large", "--cross-fit", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cross_fitted"]["method"] in ("none", "temperature", "per-class")
    assert report["cross_fitted"]["ece_uncalibrated"] != report["ece"], "large ships calibrated: two numbers"
    assert main(["evaluate", str(subset), "--cross-fit"]) == 0
    assert "cross-fitted ECE (10 halvings" in capsys.readouterr().out
    # a class the data lacks (CK+ has no neutral face) has no recall: null in strict JSON, not NaN
    import shutil

    shutil.rmtree(subset / "neutral")
    assert main(["evaluate", str(subset), "--json"]) == 0

    def no_constants(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    metrics = json.loads(capsys.readouterr().out, parse_constant=no_constants)
    assert metrics["per_class_recall"]["neutral"] is None and metrics["count"] == 60
    pytest.importorskip("matplotlib")
    assert (tmp_path / "confusion.png").stat().st_size > 1000


def test_version_via_python_dash_m() -> None:
    import emolens

    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"emolens {emolens.__version__}"


def test_the_command_shortens_openmp_spinning_unless_the_user_chose() -> None:
    """torch's idle threads sleep sooner in the command's process (and its workers); an exported value wins."""
    probe = "import os, sys; from emolens.cli import main; main(['models']); print(os.environ.get('GOMP_SPINCOUNT'))"
    cases = ((None, "10000"), ({"GOMP_SPINCOUNT": "250"}, "250"), ({"OMP_WAIT_POLICY": "PASSIVE"}, "None"))
    for exported, expected in cases:
        env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
        env |= exported or {}
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().splitlines()[-1] == expected
