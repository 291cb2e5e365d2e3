"""emolens.analyze end to end on real photos and FER2013 faces."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

import emolens
from emolens import AnalysisResult, Emotion

from .conftest import fer_samples


@pytest.fixture(scope="module")
def group_photo(photos: Path) -> Path:
    return photos / "dlib-faces" / "2008_002470.jpg"


def test_six_faces_with_emotions(group_photo: Path) -> None:
    result = emolens.analyze(group_photo)
    assert isinstance(result, AnalysisResult)
    assert result.detector == "yunet" and result.model == "default"
    assert (result.image_width, result.image_height) == (500, 332)
    assert len(result.faces) == 6
    areas = [f.box.area for f in result.faces]
    assert areas == sorted(areas, reverse=True)
    for face in result.faces:
        assert isinstance(face.emotion, Emotion)
        assert sum(face.probabilities) == pytest.approx(1.0)
        assert face.landmarks is not None and not face.fallback
        x0, y0, x1, y1 = face.box.xyxy
        assert 0 <= x0 < x1 <= 500 and 0 <= y0 < y1 <= 332
    assert set(result.timings_ms) == {"load", "detect", "classify", "total"}
    assert result.source == str(group_photo)


def test_smiling_group_is_mostly_happy(photos: Path) -> None:
    result = emolens.analyze(photos / "group" / "multiface.jpg")
    assert len(result.faces) == 6
    happy = sum(face.emotion is Emotion.HAPPY for face in result.faces)
    assert happy >= 4, [f.emotion for f in result.faces]


def test_no_face_falls_back_to_the_whole_image(photos: Path) -> None:
    dogs = photos / "dlib-faces" / "dogs.jpg"
    result = emolens.analyze(dogs)
    assert len(result.faces) == 1
    face = result.faces[0]
    assert face.fallback and face.landmarks is None
    assert (face.box.width, face.box.height) == (result.image_width, result.image_height)
    assert emolens.analyze(dogs, fallback=False).faces == ()


def test_fer_crops_are_classified_as_whole_faces(fer_val: Path) -> None:
    files, labels = fer_samples(fer_val, per_class=30)
    results = emolens.analyze_batch(files)
    assert all(len(r.faces) == 1 for r in results)
    correct = sum(r.faces[0].emotion.value == label for r, label in zip(results, labels, strict=True))
    # Chance is 1/7; the FER-cropped faces go through detection + fallback like any photo.
    assert correct / len(files) > 0.45


def test_detector_none_classifies_the_whole_image(group_photo: Path) -> None:
    result = emolens.analyze(group_photo, detector=None)
    assert result.detector == "none"
    assert len(result.faces) == 1
    assert result.faces[0].box.area == 500 * 332
    assert result.faces[0].fallback is False


@pytest.mark.parametrize("model", ["default", "fast", "large"])
def test_a_whole_image_crop_waits_small_and_answers_as_the_full_image(photos: Path, model: str) -> None:
    """A detected image keeps its crops, not its pixels: a whole-image crop (fallback, detector None) is at most
    1,024 pixels a side, and classifies within 0.02 of the full image (the model shrinks both to its input)."""
    analyzer = emolens.Analyzer(None, model, precision="float32")
    for name in ("2008_002470.jpg", "dogs.jpg"):
        photo = cv2.imread(str(photos / "dlib-faces" / name))
        big = cv2.resize(photo, None, fx=6, fy=6, interpolation=cv2.INTER_CUBIC)  # 3000 pixels wide
        detected = analyzer.detect(big)
        assert (detected.width, detected.height) == (big.shape[1], big.shape[0])
        assert max(detected.candidates[0].crop.shape[:2]) == 1024
        shrunk = np.array(analyzer.classify([detected])[0].faces[0].probabilities)
        full = analyzer.model.predict_output([big]).probabilities[0]
        assert np.abs(shrunk - full).max() < 0.02


def test_min_face_size_drops_small_faces(group_photo: Path) -> None:
    sizes = sorted(min(f.box.width, f.box.height) for f in emolens.analyze(group_photo).faces)
    limit = sizes[2] + 1
    result = emolens.analyze(group_photo, min_face_size=limit, fallback=False)
    assert len(result.faces) == sum(s >= limit for s in sizes)


def test_input_forms_agree(group_photo: Path) -> None:
    bgr = cv2.imread(str(group_photo))
    reference = emolens.analyze(bgr)
    for other in (
        emolens.analyze(group_photo),
        emolens.analyze(group_photo.read_bytes()),
        emolens.analyze(np.ascontiguousarray(bgr[:, :, ::-1]), color="rgb"),
    ):
        assert [f.box for f in other.faces] == [f.box for f in reference.faces]
        assert np.allclose([f.probabilities for f in other.faces], [f.probabilities for f in reference.faces])


def test_batch_equals_one_by_one(photos: Path, group_photo: Path) -> None:
    images = [group_photo, photos / "group" / "multiface.jpg", photos / "dlib-faces" / "dogs.jpg"]
    batch = emolens.analyze_batch(images)
    for image, result in zip(images, batch, strict=True):
        single = emolens.analyze(image)
        assert [f.box for f in result.faces] == [f.box for f in single.faces]
        assert np.allclose([f.probabilities for f in result.faces], [f.probabilities for f in single.faces], atol=1e-4)


def test_eight_threads_match_sequential_results(photos: Path) -> None:
    images = sorted((photos / "dlib-faces").glob("*.jpg"))[:8]
    sequential = [emolens.analyze(p).to_dict() for p in images]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(lambda p: emolens.analyze(p).to_dict(), images))
    for a, b in zip(sequential, parallel, strict=True):
        assert [f["box"] for f in a["faces"]] == [f["box"] for f in b["faces"]]
        pa = [list(f["probabilities"].values()) for f in a["faces"]]
        pb = [list(f["probabilities"].values()) for f in b["faces"]]
        assert np.allclose(pa, pb, atol=1e-4)


def test_haar_backend(group_photo: Path) -> None:
    result = emolens.analyze(group_photo, detector="haar")
    assert result.detector == "haar"
    assert len(result.faces) >= 5
    assert all(f.landmarks is None for f in result.faces)


def test_annotate_draws_on_a_copy(group_photo: Path) -> None:
    bgr = cv2.imread(str(group_photo))
    result = emolens.analyze(bgr)
    drawn = emolens.annotate(bgr, result)
    assert drawn.shape == bgr.shape and not np.array_equal(drawn, bgr)
    assert np.array_equal(bgr, cv2.imread(str(group_photo)))  # input untouched


def test_analyzer_warmup_and_repr() -> None:
    analyzer = emolens.Analyzer(detector="haar")
    analyzer.warmup()
    assert "haar" in repr(analyzer)


@pytest.mark.parametrize("detector", ["yunet", "auto"])
def test_detector_options_downscale_detection_and_keep_boxes(detector: str, photos: Path) -> None:
    image = cv2.resize(cv2.imread(str(photos / "group" / "multiface.jpg")), (640, 480), interpolation=cv2.INTER_AREA)
    full = emolens.Analyzer(detector=detector).analyze(image, fallback=False)
    small = emolens.Analyzer(detector=detector, detector_options={"max_side": 320}).analyze(image, fallback=False)
    assert len(full.faces) == len(small.faces) == 6
    for a, b in zip(sorted(f.box.xyxy for f in full.faces), sorted(f.box.xyxy for f in small.faces), strict=True):
        assert max(abs(p - q) for p, q in zip(a, b, strict=True)) <= 8  # boxes come back in original pixels


def test_analyze_function_passes_detector_options_and_caches_per_option(photos: Path) -> None:
    image = cv2.resize(cv2.imread(str(photos / "group" / "multiface.jpg")), (640, 480), interpolation=cv2.INTER_AREA)
    # At 64 px the six faces are ~6 px wide, below what YuNet finds: proof the option reached the detector.
    tiny = emolens.analyze(image, detector="yunet", detector_options={"max_side": 64}, fallback=False)
    small = emolens.analyze(image, detector="yunet", detector_options={"max_side": 320}, fallback=False)
    full = emolens.analyze(image, detector="yunet", fallback=False)  # not served by an analyzer built with options
    assert len(tiny.faces) < 6
    assert len(small.faces) == len(full.faces) == 6
