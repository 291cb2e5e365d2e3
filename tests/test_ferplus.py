"""FER+ crowd votes: reading both table formats, target modes, and consensus scoring."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from emolens import DatasetError
from emolens.labels import FER2013, FERPLUS, LabelSet
from emolens.training import (
    build_targets,
    expected_calibration_error,
    load_dataset,
    majority_labels,
    score,
    vote_distribution,
)

HEADER = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "not_face"]


def _votes(**counts: int) -> np.ndarray:
    return np.array([counts.get(name, 0) for name in HEADER], dtype=np.float32)


def test_majority_follows_the_ferplus_rules() -> None:
    votes = np.stack(
        [
            _votes(anger=6, neutral=4),  # clear majority
            _votes(happiness=5, surprise=5),  # tie: excluded
            _votes(unknown=6, neutral=4),  # top vote is "unknown": excluded
            _votes(contempt=5, neutral=3, anger=2),  # contempt has no class among FER2013's 7: excluded
            _votes(),  # no votes
        ]
    )
    assert majority_labels(votes).tolist() == [FER2013.index("angry"), -1, -1, -1, -1]
    # with contempt in the label set, the fourth image has a majority
    assert majority_labels(votes, FERPLUS)[3] == FERPLUS.index("contempt")


def test_distribution_folds_away_labels_outside_the_set() -> None:
    d = vote_distribution(np.stack([_votes(anger=6, contempt=2, neutral=2), _votes(unknown=10)]))
    assert d[0, FER2013.index("angry")] == pytest.approx(0.75) and d[0, FER2013.index("neutral")] == pytest.approx(0.25)
    assert d[0].sum() == pytest.approx(1.0) and not d[1].any()
    with pytest.raises(DatasetError, match="no column for label"):
        vote_distribution(d, LabelSet("custom", ("joy", "calm")))


def _dataset_with(votes: np.ndarray, labels: list[int]) -> object:
    from emolens.training import FaceDataset

    n = len(labels)
    return FaceDataset(np.zeros((n, 4, 4), np.uint8), np.array(labels), tuple(map(str, range(n))), votes=votes)


def test_target_modes() -> None:
    votes = np.stack([_votes(anger=6, neutral=4), _votes(unknown=7, neutral=3), _votes()])
    data = _dataset_with(votes, [FER2013.index("angry"), FER2013.index("sad"), FER2013.index("fear")])
    original, keep = build_targets(data, "original")  # type: ignore[arg-type]
    assert keep.all() and original.argmax(1).tolist() == data.labels.tolist()  # type: ignore[attr-defined]
    majority, keep = build_targets(data, "majority")  # type: ignore[arg-type]
    assert keep.tolist() == [True, False, False] and majority[0, FER2013.index("angry")] == 1
    distribution, keep = build_targets(data, "distribution")  # type: ignore[arg-type]
    assert keep.tolist() == [True, False, False]  # mostly "unknown", and no votes at all
    assert distribution[0, FER2013.index("neutral")] == pytest.approx(0.4)
    mixed, keep = build_targets(data, "mixed", original_weight=0.25)  # type: ignore[arg-type]
    assert mixed[0, FER2013.index("angry")] == pytest.approx(0.75 * 0.6 + 0.25)
    assert np.allclose(mixed[keep].sum(1), 1)
    with pytest.raises(DatasetError, match="need FER\\+ votes"):
        build_targets(_dataset_with(None, [0]), "distribution")  # type: ignore[arg-type]


def test_consensus_scoring_and_soft_ece() -> None:
    votes = np.stack([_votes(anger=6, neutral=4), _votes(neutral=10), _votes(happiness=5, surprise=5)])
    probabilities = np.zeros((3, 7))
    probabilities[0, FER2013.index("angry")] = 1.0
    probabilities[1, FER2013.index("happy")] = 1.0
    probabilities[2, FER2013.index("happy")] = 1.0
    labels = np.array([FER2013.index("sad")] * 3)
    result = score(probabilities, labels, votes)
    assert result.accuracy == 0.0  # against the original labels
    assert result.consensus is not None and result.votes is not None
    assert result.consensus.count == 2 and result.consensus.accuracy == 0.5  # the tie is excluded
    assert result.votes.count == 3
    # soft ECE: confidence 1 everywhere; vote share of the predicted class 0.6, 0 and 0.5
    assert result.votes.ece == pytest.approx(1 - (0.6 + 0.0 + 0.5) / 3)
    assert expected_calibration_error(probabilities, vote_distribution(votes)) == pytest.approx(result.votes.ece)


def _write_table(path: Path, rows: list[list[object]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", *HEADER])
        writer.writerows(rows)


@pytest.fixture
def tiny_folder(tmp_path: Path) -> Path:
    """A split folder of 3 images with a FER+ table where emolens looks for it."""
    root = tmp_path / "fer" / "val"
    for name in ("angry", "happy"):
        (root / name).mkdir(parents=True)
    for file in ("angry/a.png", "angry/b.png", "happy/c.png"):
        cv2.imwrite(str(root / file), np.full((48, 48), 100, np.uint8))
    (tmp_path / "fer" / "ferplus").mkdir()
    _write_table(
        tmp_path / "fer" / "ferplus" / "val.csv",
        [["angry/a.png", 2, 0, 0, 0, 8, 0, 0, 0, 0, 0], ["happy/c.png", 0, 9, 1, 0, 0, 0, 0, 0, 0, 0]],
    )
    return root


def test_folder_votes_are_found_beside_the_split(tiny_folder: Path) -> None:
    data = load_dataset(tiny_folder)
    assert data.votes is not None and data.has_votes.tolist() == [True, False, True]
    assert data.votes[0, HEADER.index("anger")] == 8
    assert data.vote_summary() == "3 images, 2 with FER+ votes"
    assert load_dataset(tiny_folder, ferplus=None).votes is None
    assert data.fingerprint() != data.without_votes().fingerprint()  # a resumed run notices changed votes


def test_malformed_vote_rows(tiny_folder: Path, tmp_path: Path) -> None:
    table = tmp_path / "bad.csv"
    _write_table(
        table, [["angry/a.png", 2, 0, 0, 0, "x", 0, 0, 0, 0, 0], ["happy/c.png", 0, 9, 1, 0, 0, 0, 0, 0, 0, 0]]
    )
    assert load_dataset(tiny_folder, ferplus=table).has_votes.sum() == 1  # skipped by default
    with pytest.raises(DatasetError, match=r"bad.csv:2: malformed FER\+ row"):
        load_dataset(tiny_folder, ferplus=table, skip_unreadable=False)
    table.write_text("file,neutral\nangry/a.png,3\n")
    with pytest.raises(DatasetError, match="lacks column"):
        load_dataset(tiny_folder, ferplus=table)
    _write_table(table, [["elsewhere/z.png", 0, 9, 1, 0, 0, 0, 0, 0, 0, 0]])
    with pytest.raises(DatasetError, match="names none of the images"):
        load_dataset(tiny_folder, ferplus=table)


def test_kaggle_csv_with_microsofts_fer2013new(tmp_path: Path) -> None:
    pixels = " ".join(["128"] * 48 * 48)
    rows = [(0, "Training"), (3, "Training"), (4, "PublicTest"), (6, "Training")]
    with (tmp_path / "fer2013.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["emotion", "pixels", "Usage"])
        writer.writerows([[label, pixels, usage] for label, usage in rows])
    with (tmp_path / "fer2013new.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Usage", "Image name", *HEADER[:-1], "NF"])
        writer.writerow(["Training", "fer0000000.png", 0, 0, 0, 0, 9, 0, 0, 0, 1, 0])
        writer.writerow(["Training", "", 0, 0, 0, 0, 0, 0, 0, 0, 0, 10])  # a row FER+ dropped: no votes
        writer.writerow(["PublicTest", "fer0000002.png", 0, 0, 0, 8, 2, 0, 0, 0, 0, 0])
        writer.writerow(["Training", "fer0000003.png", 10, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    train = load_dataset(tmp_path / "fer2013.csv", "train")
    assert train.votes is not None and train.has_votes.tolist() == [True, False, True]
    assert majority_labels(train.votes).tolist() == [FER2013.index("angry"), -1, FER2013.index("neutral")]
    val = load_dataset(tmp_path / "fer2013.csv", "val")
    assert val.votes is not None and majority_labels(val.votes).tolist() == [FER2013.index("sad")]
    # a fer2013new.csv that does not match row for row is refused
    lines = (tmp_path / "fer2013new.csv").read_text().splitlines()
    (tmp_path / "fer2013new.csv").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DatasetError, match="matched by row"):
        load_dataset(tmp_path / "fer2013.csv", "train")


@pytest.mark.parametrize("split", ["train", "val"])
def test_shared_ferplus_tables_attach(shared: Path, split: str) -> None:
    """The real tables: every row names an image of its split; counts as ../shared documents them."""
    from emolens.training import read_ferplus_table

    table, skipped = read_ferplus_table(shared / "datasets" / "fer2013" / "ferplus" / f"{split}.csv")
    assert skipped == 0 and len(table) == {"train": 25_363, "val": 3_454}[split]
    root = shared / "datasets" / "fer2013" / split
    assert all((root / name).is_file() for name in list(table)[:200])
