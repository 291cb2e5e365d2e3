"""Label sets have one home: emolens/labels.py. No other module spells out a label or a class count."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from emolens import Emotion
from emolens.labels import AFFECTNET8, CANONICAL, FER2013, FERPLUS, HSEMOTION8, LabelSet, display_label, label_set

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "emolens"
# A quoted canonical label, or a count of 7 or 8 classes written out.
HARD_CODED = re.compile(
    r"""["'](?:angry|disgust|fear|happy|sad|surprise|neutral|contempt)["']"""
    r"""|minlength=[78]\b|\(N, [78]\)|\b[78] (?:classes|probabilities)\b"""
)


def test_no_label_list_or_count_outside_the_label_module() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "labels.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if HARD_CODED.search(line)
    ]
    assert offenders == [], "move label names and counts to emolens/labels.py:\n" + "\n".join(offenders)


def test_the_enum_and_the_vocabulary_agree() -> None:
    assert tuple(e.value for e in Emotion) == CANONICAL
    assert FER2013.labels == CANONICAL[:7] and all(set(s.labels) <= set(CANONICAL) for s in (FERPLUS, AFFECTNET8))
    assert set(HSEMOTION8.labels) == set(CANONICAL) and len(HSEMOTION8) == 8


def test_label_sets() -> None:
    assert label_set(list(FER2013.labels)) is FER2013 and label_set("ferplus") is FERPLUS
    custom = label_set(["기쁨", "중립"])
    assert custom.name == "custom" and not custom.canonical and custom.display("ko") == ("기쁨", "중립")
    assert FERPLUS.display("ko")[FERPLUS.index("contempt")] == "경멸" and display_label("sad", "ru") == "Грусть"
    with pytest.raises(ValueError, match="repeats a label"):
        LabelSet("x", ("a", "a"))
    with pytest.raises(ValueError, match="not in label set"):
        FER2013.index("contempt")
    with pytest.raises(ValueError, match="unknown label set"):
        label_set("affectnet")
