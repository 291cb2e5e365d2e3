"""Label sets: the one home of emotion label names, their orders and display names.

A label set is an ordered tuple of label names: the order is the order of a model's outputs. The
canonical vocabulary is the 7 FER2013 classes plus ``contempt`` (the 8th class of FER+ and AffectNet);
a model may also declare custom labels (any non-empty, distinct names), which then have no
:class:`~emolens.Emotion` member and no translations.

>>> FER2013.labels
('angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral')
>>> FERPLUS.index("contempt")
7
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "AFFECTNET8",
    "CANONICAL",
    "COLORS",
    "DISPLAY_NAMES",
    "FER2013",
    "FERPLUS",
    "FERPLUS_VOTE_COLUMNS",
    "HSEMOTION8",
    "LABEL_SETS",
    "Emotion",
    "LabelSet",
    "display_label",
    "display_names",
    "label_set",
]

#: Every canonical emotion label, FER2013's order first, then contempt.
CANONICAL: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "contempt")

#: Display names of the canonical labels, per language, in :data:`CANONICAL` order.
DISPLAY_NAMES: dict[str, tuple[str, ...]] = {
    "en": ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral", "Contempt"),
    "vi": ("Tức giận", "Ghê tởm", "Sợ hãi", "Vui vẻ", "Buồn", "Ngạc nhiên", "Bình thường", "Khinh bỉ"),
    "ko": ("화남", "혐오", "두려움", "행복", "슬픔", "놀람", "중립", "경멸"),
    "ru": ("Злость", "Отвращение", "Страх", "Радость", "Грусть", "Удивление", "Нейтральность", "Презрение"),
}


@dataclass(frozen=True, slots=True)
class LabelSet:
    """An ordered, named tuple of label names (the order of a model's outputs)."""

    name: str
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        labels = tuple(self.labels)
        object.__setattr__(self, "labels", labels)
        if not labels or any(not isinstance(label, str) or not label.strip() for label in labels):
            raise ValueError(f"label set {self.name!r} needs non-empty label names, got {labels!r}")
        if len(set(labels)) != len(labels):
            raise ValueError(f"label set {self.name!r} repeats a label: {labels!r}")

    def __len__(self) -> int:
        return len(self.labels)

    def __iter__(self) -> Iterator[str]:
        return iter(self.labels)

    def __contains__(self, label: object) -> bool:
        return label in self.labels

    def index(self, label: str) -> int:
        """Position of ``label`` in this set (ValueError naming the set when absent)."""
        try:
            return self.labels.index(label)
        except ValueError:
            raise ValueError(f"{label!r} is not in label set {self.name!r} ({', '.join(self.labels)})") from None

    @property
    def canonical(self) -> bool:
        """True when every label is in the canonical emotion vocabulary (so each is an ``Emotion``)."""
        return all(label in CANONICAL for label in self.labels)

    def display(self, language: str = "en") -> tuple[str, ...]:
        """Display names in ``language``; custom labels are shown as they are."""
        names = display_names(language)
        return tuple(names[CANONICAL.index(label)] if label in CANONICAL else label for label in self.labels)


def display_label(label: str, language: str = "en") -> str:
    """The display name of one label in ``language`` (a custom label is shown as it is)."""
    return display_names(language)[CANONICAL.index(label)] if label in CANONICAL else label


def display_names(language: str) -> tuple[str, ...]:
    """Display names of :data:`CANONICAL` in ``language`` (ValueError listing the known languages)."""
    try:
        return DISPLAY_NAMES[language]
    except KeyError:
        known = ", ".join(sorted(DISPLAY_NAMES))
        raise ValueError(f"no display names for language {language!r}; known: {known}") from None


#: FER2013's 7 classes in the dataset's label order (0 = angry ... 6 = neutral).
FER2013 = LabelSet("fer2013", CANONICAL[:7])
#: FER+'s 8 emotions in the order of its vote columns.
FERPLUS = LabelSet("ferplus", ("neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt"))
#: AffectNet's 8 expression classes in its label order (0 = neutral ... 7 = contempt).
AFFECTNET8 = LabelSet("affectnet8", ("neutral", "happy", "sad", "surprise", "fear", "disgust", "angry", "contempt"))
#: The output order of HSEmotion's 8-class AffectNet models (alphabetical).
HSEMOTION8 = LabelSet("hsemotion8", ("angry", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise"))

LABEL_SETS: dict[str, LabelSet] = {s.name: s for s in (FER2013, FERPLUS, AFFECTNET8, HSEMOTION8)}


class Emotion(str, Enum):
    """The canonical emotion labels: the 7 FER2013 classes in the dataset's label order, then contempt.

    Models with other label orders or with custom labels are fine: results carry the model's labels,
    and ``Face.emotion`` is the member for a canonical top label (``None`` for a custom one).
    """

    ANGRY = "angry"
    DISGUST = "disgust"
    FEAR = "fear"
    HAPPY = "happy"
    SAD = "sad"
    SURPRISE = "surprise"
    NEUTRAL = "neutral"
    CONTEMPT = "contempt"

    def __str__(self) -> str:
        return self.value

    @property
    def label_index(self) -> int:
        """Position of this label in :data:`emolens.labels.CANONICAL` (FER2013 order for the first 7)."""
        return CANONICAL.index(self.value)

    def label(self, language: str = "en") -> str:
        """Display name in ``language`` ("en", "vi", "ko" or "ru")."""
        return display_names(language)[self.label_index]

    @classmethod
    def languages(cls) -> tuple[str, ...]:
        """Language codes accepted by :meth:`label`."""
        return tuple(sorted(DISPLAY_NAMES))


#: A colour per canonical label for plots (matplotlib names); custom labels get the next free colours.
COLORS: dict[str, str] = {
    "angry": "#d62728",
    "disgust": "#8c564b",
    "fear": "#9467bd",
    "happy": "#2ca02c",
    "sad": "#1f77b4",
    "surprise": "#ff7f0e",
    "neutral": "#7f7f7f",
    "contempt": "#bcbd22",
}

#: The 10 vote columns of FER+ (``fer2013new.csv`` and ``ferplus/*.csv``), mapped to canonical labels;
#: ``unknown`` and ``not_face`` are votes for no emotion.
FERPLUS_VOTE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("neutral", "neutral"),
    ("happiness", "happy"),
    ("surprise", "surprise"),
    ("sadness", "sad"),
    ("anger", "angry"),
    ("disgust", "disgust"),
    ("fear", "fear"),
    ("contempt", "contempt"),
    ("unknown", "unknown"),
    ("not_face", "not_face"),
)


def label_set(labels: LabelSet | str | Sequence[str]) -> LabelSet:
    """A :class:`LabelSet` from a set, a known set's name, or a sequence of labels.

    A sequence equal to a known set's labels returns that set (so it keeps its name); any other
    sequence is a custom set named ``"custom"``.
    """
    if isinstance(labels, LabelSet):
        return labels
    if isinstance(labels, str):
        try:
            return LABEL_SETS[labels]
        except KeyError:
            raise ValueError(f"unknown label set {labels!r}; known: {', '.join(sorted(LABEL_SETS))}") from None
    as_tuple = tuple(labels)
    for known in LABEL_SETS.values():
        if known.labels == as_tuple:
            return known
    return LabelSet("custom", as_tuple)
