"""The consensus recipe (meant for a GPU) in miniature on the CPU: every stage trains, distils and exports."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

import emolens
from emolens.cli import main

pytestmark = pytest.mark.slow  # trains three models in miniature: `pytest -m 'not slow'` skips it


@pytest.fixture(scope="module")
def voted_tiny(tmp_path_factory: pytest.TempPathFactory, shared: Path) -> Path:
    """FER2013 train/val subsets (40 / 15 images per class) with their rows of the FER+ vote tables."""
    root = tmp_path_factory.mktemp("voted") / "fer2013"
    source = shared / "datasets" / "fer2013"
    (root / "ferplus").mkdir(parents=True)
    for split, count in (("train", 40), ("val", 15)):
        with (source / "ferplus" / f"{split}.csv").open(newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            votes = {row[0]: row for row in reader}
        kept = []
        for folder in sorted((source / split).iterdir()):
            (root / split / folder.name).mkdir(parents=True)
            for file in [f for f in sorted(folder.glob("*.jpg")) if f"{folder.name}/{f.name}" in votes][:count]:
                shutil.copy(file, root / split / folder.name / file.name)
                kept.append(votes[f"{folder.name}/{file.name}"])
        with (root / "ferplus" / f"{split}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(kept)
    return root


def test_recipe_in_miniature(voted_tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "recipe"
    code = main(
        ["recipe", str(voted_tiny / "train"), str(voted_tiny / "val"), "--out", str(out), "--device", "cpu", "--mini"]
    )
    assert code == 0
    printed = capsys.readouterr().out
    for name in ("consensus-large", "consensus-default", "consensus-fast"):
        weights = out / f"emolens-{name}.safetensors"
        assert weights.is_file() and weights.stat().st_size <= 16 * 2**20
        assert f"emolens-{name}: val consensus" in printed
        model = emolens.load_model(out / f"emolens-{name}.json")
        assert model.labels == emolens.labels.FER2013.labels
    card = (out / "emolens-consensus-default.md").read_text()
    assert "## Agreement with people (FER+ consensus)" in card and "--teacher" in card
    assert "--targets distribution" in card and "--logit-adjustment 1.0" in card and "Prior shift: 0.4" in card
