import json
from pathlib import Path

import pytest

import emolens
import emolens.errors
from emolens import AnalysisResult, Box, Emotion, Face, Landmarks, Point


def test_emotions_follow_fer2013_label_order_then_contempt() -> None:
    fer2013 = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert [e.value for e in Emotion] == [*fer2013, "contempt"]
    assert [e.label_index for e in Emotion] == list(range(8))
    assert Emotion("happy") is Emotion.HAPPY
    assert Emotion.HAPPY == "happy" and str(Emotion.HAPPY) == "happy"


@pytest.mark.parametrize(
    ("language", "expected"), [("en", "Happy"), ("vi", "Vui vẻ"), ("ko", "행복"), ("ru", "Радость")]
)
def test_display_names(language: str, expected: str) -> None:
    assert Emotion.HAPPY.label(language) == expected
    assert len({e.label(language) for e in Emotion}) == 8


def test_unknown_language_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="known: en, ko, ru, vi"):
        Emotion.SAD.label("xx")


def test_box_geometry() -> None:
    box = Box(10, 20, 30, 40)
    assert box.xyxy == (10, 20, 40, 60)
    assert box.area == 1200
    assert box.center == (25.0, 40.0)
    assert box.iou(box) == 1.0
    assert box.iou(Box(100, 100, 5, 5)) == 0.0
    assert Box(0, 0, 10, 10).iou(Box(5, 0, 10, 10)) == pytest.approx(50 / 150)


def _face(**kwargs: object) -> Face:
    probs = (0.05, 0.05, 0.05, 0.6, 0.1, 0.05, 0.1)
    return Face(box=Box(1, 2, 3, 4), score=0.9, probabilities=probs, **kwargs)  # type: ignore[arg-type]


def test_face_properties_and_immutability() -> None:
    face = _face()
    assert face.emotion is Emotion.HAPPY
    assert face.confidence == 0.6
    assert list(face.scores) == list(Emotion)[:7] and face.label == "happy"
    assert face.scores[Emotion.HAPPY] == face.scores["happy"] == 0.6
    with pytest.raises(AttributeError):
        face.score = 0.1  # type: ignore[misc]
    with pytest.raises(ValueError, match="7 probabilities"):
        Face(box=Box(0, 0, 1, 1), score=1.0, probabilities=(1.0,))


def test_result_json_has_the_same_shape_with_and_without_landmarks() -> None:
    landmarks = Landmarks.from_array([(1, 2), (3, 4), (5, 6), (7, 8), (9, 10)])
    assert landmarks.nose == Point(5.0, 6.0)
    plain = AnalysisResult((_face(),), 100, 50, "haar", "default", {"total": 1.0})
    rich = AnalysisResult((_face(landmarks=landmarks),), 100, 50, "yunet", "default", {"total": 1.0})
    a, b = json.loads(plain.to_json()), json.loads(rich.to_json())
    assert a.keys() == b.keys()
    assert a["faces"][0].keys() == b["faces"][0].keys()
    assert a["faces"][0]["landmarks"] is None
    assert b["faces"][0]["landmarks"]["left_eye"] == {"x": 1.0, "y": 2.0}
    assert a["faces"][0]["emotion"] == "happy"
    assert sum(a["faces"][0]["probabilities"].values()) == pytest.approx(1.0)
    assert plain.dominant_emotion is Emotion.HAPPY
    assert AnalysisResult((), 1, 1, "haar", "default").dominant_emotion is None


def test_custom_labels_and_valence_arousal() -> None:
    face = Face(Box(0, 0, 4, 4), 1.0, (0.2, 0.8), labels=("기쁨", "중립"), valence=0.5, arousal=-0.25)
    assert face.label == "기쁨" if face.probabilities[0] > 0.5 else face.label == "중립"
    assert face.emotion is None  # a custom label has no Emotion member
    data = json.loads(AnalysisResult((face,), 4, 4, "none", "custom").to_json())["faces"][0]
    assert data["label"] == "중립" and data["emotion"] is None
    assert data["probabilities"] == {"기쁨": 0.2, "중립": 0.8}
    assert (data["valence"], data["arousal"]) == (0.5, -0.25)
    with pytest.raises(ValueError, match="expected 2 probabilities"):
        Face(Box(0, 0, 1, 1), 1.0, (1.0,), labels=("a", "b"))


def test_results_of_one_image_are_equal_and_hashable_whatever_their_timings(photos: Path) -> None:
    """A frozen result is hashable (it raised TypeError on its timings dict); timings are a measurement, so two
    analyses of one photo are equal and deduplicate in a set."""
    import emolens

    first, second = (emolens.analyze(photos / "group" / "multiface.jpg") for _ in range(2))
    assert len(first.faces) == 6 and first.timings_ms != second.timings_ms
    assert first == second and hash(first) == hash(second) and len({first, second}) == 1
    assert first != AnalysisResult(first.faces[:5], first.image_width, first.image_height, first.detector, first.model)


@pytest.mark.parametrize(
    "error",
    [
        emolens.errors.InvalidImageError("bad", source="x.jpg"),
        emolens.errors.ImageTooLargeError("big", source=b"x"),
        emolens.errors.UnknownNameError("detector", "yunnet", ["yunet", "haar"]),
        emolens.errors.InvalidOptionError("bad", option="device"),
        emolens.errors.MissingDependencyError("dlib", "dlib", "the dlib detectors"),
        emolens.errors.InvalidVideoError("bad", source="v.mp4"),
        emolens.errors.DatasetError("bad", path="data"),
        emolens.errors.WeightsError("bad", filename="w"),
        emolens.errors.WeightsUnavailableError("offline", filename="w"),
        emolens.errors.WeightsDownloadError("offline", filename="w", url="https://example.org/w"),
        emolens.errors.WeightsIntegrityError("tampered", filename="w", expected="a" * 64, actual="b" * 64),
        emolens.errors.InternalError("broken"),
        emolens.errors.ModelError("broken", component="default"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_every_error_crosses_a_process_boundary_as_itself(error: emolens.EmolensError) -> None:
    """A worker's error reaches `emolens batch`'s parent pickled: it failed to unpickle for every class whose
    __init__ takes more than the message (so the pool broke as if a worker had died)."""
    import pickle

    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error) and copy.__dict__ == error.__dict__
    documented = ("source", "kind", "name", "known", "suggestions", "option", "package", "extra", "path")
    documented += ("filename", "url", "expected", "actual", "component")  # WeightsDownloadError keeps filename
    for attribute in documented:  # in OSError's own slot, outside __dict__
        assert getattr(copy, attribute, None) == getattr(error, attribute, None), attribute
