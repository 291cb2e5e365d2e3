"""Your own labels end to end: build a dataset from annotated photos, train, export, analyze, evaluate."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tools.testdata import labelled_faces

import emolens
from emolens import DatasetError
from emolens.cli import main
from emolens.training import TrainConfig, build_crop_dataset, export_run, load_dataset, majority_vote, train

KOREAN = {"happy": "기쁨", "surprise": "당황", "neutral": "중립"}


def test_majority_vote() -> None:
    assert majority_vote(["기쁨", "기쁨", "중립"]) == "기쁨"
    assert majority_vote(["기쁨", "당황", "중립"]) is None  # all disagree: set aside
    assert majority_vote(["a", "a", "b", "b"]) is None  # a tie at the top
    assert majority_vote(["", "b", ""]) == "b" and majority_vote(["", ""]) is None


def _table(photos: Path, folder: Path, base_url: str) -> Path:
    """Rows for every labelled face of the dlib photos, with synthetic annotators; some images by URL."""
    rows = []
    names = list(KOREAN.values())
    for i, (file, boxes) in enumerate(sorted(labelled_faces(photos).items())):
        for j, (x, y, w, h) in enumerate(boxes):
            k = i + j
            votes = [names[k % 3], names[k % 3], names[(k + 1) % 3]]
            if k % 7 == 0:
                votes = names[:]  # three different answers: no majority
            image = f"{base_url}/{file}" if i % 3 == 0 else str(photos / "dlib-faces" / file)
            rows.append([image, x, y, w, h, *votes])
    rows.append([f"{base_url}/missing.jpg", 1, 1, 10, 10, "기쁨", "기쁨", "기쁨"])  # a download that fails
    rows.append([str(photos / "dlib-faces" / "testing.xml"), 1, 1, 10, 10, "기쁨", "기쁨", "기쁨"])  # not an image
    rows.append([str(photos / "group" / "multiface.jpg"), "", "", "", "", "중립", "중립", "당황"])  # box by detector
    table = folder / "faces.csv"
    with table.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "x", "y", "width", "height", "label_1", "label_2", "label_3"])
        writer.writerows(rows)
    return table


def test_dataset_crop_from_boxes_urls_and_a_detector(photos: Path, tmp_path: Path, serve: object) -> None:
    served = tmp_path / "served"
    shutil.copytree(photos / "dlib-faces", served)
    table = _table(photos, tmp_path, serve(served))  # type: ignore[operator]
    out = tmp_path / "dataset"
    summary = build_crop_dataset(table, out, ratios=(0.6, 0.2, 0.2), detector="haar")
    written = sum(sum(counts.values()) for counts in summary.written.values())
    total_faces = sum(len(b) for b in labelled_faces(photos).values())
    assert summary.no_majority == sum(1 for i in range(total_faces + 10) if i % 7 == 0) or summary.no_majority > 0
    assert summary.failed == 2 and written + summary.no_majority + summary.failed == total_faces + 3
    assert summary.labels == tuple(sorted(KOREAN.values()))
    errors = list(csv.DictReader((out / "errors.csv").open(encoding="utf-8")))
    assert {Path(e["image"]).name for e in errors} == {"missing.jpg", "testing.xml"}
    assert any("download failed" in e["error"] for e in errors)
    for split in ("train", "val", "test"):
        assert (out / split / "labels.txt").read_text(encoding="utf-8").split() == sorted(KOREAN.values())
    crop = next((out / "train").glob("*/*.png"))
    assert emolens.analyze(crop, detector=None).faces[0].box.width == 96
    # a re-run retries only what failed: the missing file now exists on the server
    shutil.copy(served / "dogs.jpg", served / "missing.jpg")
    again = build_crop_dataset(table, out, ratios=(0.6, 0.2, 0.2), detector="haar")
    assert again.already_done == written and again.failed == 1
    assert sum(sum(c.values()) for c in again.written.values()) == 1
    with pytest.raises(DatasetError, match="needs an `image` column"):
        (tmp_path / "bad.csv").write_text("file,label\na.jpg,x\n")
        build_crop_dataset(tmp_path / "bad.csv", out)


@pytest.fixture(scope="module")
def korean_dataset(tmp_path_factory: pytest.TempPathFactory, shared: Path) -> Path:
    """FER2013 happy / surprise / neutral, renamed to Korean labels (train 60 and val 20 per class)."""
    root = tmp_path_factory.mktemp("korean")
    for split, count in (("train", 60), ("val", 20)):
        for source, label in KOREAN.items():
            folder = root / split / label
            folder.mkdir(parents=True)
            for file in sorted((shared / "datasets" / "fer2013" / split / source).glob("*.jpg"))[:count]:
                shutil.copy(file, folder / file.name)
    return root


def _korean_config(dataset: Path, run: Path, **options: object) -> TrainConfig:
    # a few dozen steps: with the default EMA decay the averaged weights would still be the initial ones
    return TrainConfig(
        train_data=str(dataset / "train"),
        val_data=str(dataset / "val"),
        out_dir=str(run),
        model="fast",
        batch_size=30,
        threads=1,
        ema_decay=0.5,
        **options,  # type: ignore[arg-type]
    )


def test_custom_label_model_trains_exports_and_analyzes(
    korean_dataset: Path, tmp_path: Path, photos: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = load_dataset(korean_dataset / "val")
    assert data.classes == ("기쁨", "당황", "중립")  # not FER2013 names: custom labels, sorted
    run = tmp_path / "run"
    # fine-tuned from the 7-class model: its last layer starts fresh
    result = train(_korean_config(korean_dataset, run, init="fast", epochs=3, lr=0.01))
    assert result.best_val_accuracy > 0.4  # chance is 1/3
    card = export_run(run, tmp_path / "export", "korean-3")
    assert card.labels == ("기쁨", "당황", "중립")
    model = tmp_path / "export" / "korean-3.json"
    face = emolens.analyze(photos / "group" / "multiface.jpg", model=str(model), detector="haar").faces[0]
    assert face.labels == ("기쁨", "당황", "중립") and face.label in face.labels and face.emotion is None
    # the CLI: analyze JSON and evaluate follow the model's labels
    assert main(["evaluate", str(korean_dataset / "val"), "--model", str(model), "--json"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(korean_dataset / "val"), "--model", str(model), "--json", "--cross-fit"]) == 0
    record = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert list(record["cross_fitted"]["temperatures"]) == ["기쁨", "당황", "중립"]  # the dataset's classes


def test_custom_labels_flow_through_cli_and_video(
    korean_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    train(_korean_config(korean_dataset, run, epochs=1))
    image = next((korean_dataset / "val" / "기쁨").glob("*.jpg"))
    assert main(["analyze", str(image), "--model", str(run), "--detector", "none", "--json"]) == 0
    record = json.loads(capsys.readouterr().out.splitlines()[0])
    assert list(record["faces"][0]["probabilities"]) == ["기쁨", "당황", "중립"]
    # a timeline of a custom-label model has one column per label
    from emolens.video import Tracker, VideoAnalysis

    face = emolens.analyze(image, model=str(run), detector=None).faces[0]
    analysis = VideoAnalysis()
    tracker = Tracker(smoothing=0.0)
    for index in range(3):
        analysis.add(emolens.FrameResult(index, index / 10, tracker.update((face,)), 48, 48))
    csv_path = tmp_path / "timeline.csv"
    analysis.to_csv(csv_path)
    header = csv_path.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert header[8:11] == ["기쁨", "당황", "중립"] and "raw_중립" in header
    assert analysis.summary()[1].dominant in KOREAN.values()
    assert np.isclose(sum(analysis.summary()[1].shares.values()), 1.0)
