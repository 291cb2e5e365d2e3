"""Every registered detector, on real photos with hand-labelled faces."""

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from tools.testdata import labelled_faces, match_faces

from emolens import Detection, create_detector
from emolens.detectors import DETECTORS
from emolens.errors import InvalidOptionError, MissingDependencyError

from .conftest import shared_path

# Minimum faces found (IoU >= 0.3) of the 25 in testing.xml, and maximum false positives there.
# YuNet's and dlib-cnn's bars (>= 90 %) come from the issues; the others from their measured behaviour on
# all 43 labelled faces (`python benchmarks/detectors.py`), with a face of slack.
BARS = {"yunet": (23, 0), "retinaface-mobilenet": (23, 0), "dlib-hog": (23, 0), "dlib-cnn": (22, 0), "haar": (19, 3)}
DEFAULT_BAR = (20, 3)


def _match(found: list[Detection], truth: list[tuple[int, int, int, int]]) -> tuple[int, int]:
    """(true faces matched at IoU >= 0.3, detections matching no true face)."""
    return match_faces((d.box for d in found), truth)


# The retina-face package's real weights cannot be downloaded here (see test_optional_backends.py).
UNTESTABLE_ACCURACY = {"retinaface"}


# Every registered detector, and YuNet once more on its second engine (OpenCV; the default is onnxruntime).
DETECTOR_CASES = [n for n in DETECTORS.names() if n not in UNTESTABLE_ACCURACY] + ["yunet:opencv"]


@pytest.fixture(scope="module", params=DETECTOR_CASES)
def detector(request: pytest.FixtureRequest) -> object:
    name, _, engine = request.param.partition(":")
    spec = DETECTORS.get(name)
    for module in spec.requires:
        pytest.importorskip(module, reason=f"pip install 'emolens[{spec.extra}]' to test {spec.name}")
    if spec.weights and not spec.weights[0].bundled:
        shared_path("weights")  # the session's weights cache is seeded from ../shared/weights
    return create_detector(name, **({"engine": engine} if engine else {}))


def test_finds_the_labelled_faces(detector, photos: Path) -> None:
    import xml.etree.ElementTree as ET

    testing = {i.get("file") for i in ET.parse(photos / "dlib-faces" / "testing.xml").getroot().iter("image")}
    truth = {k: v for k, v in labelled_faces(photos).items() if k in testing}
    assert sum(len(v) for v in truth.values()) == 25
    found = total_false = 0
    for name, boxes in truth.items():
        image = cv2.imread(str(photos / "dlib-faces" / name))
        detections = detector.detect(image)
        for d in detections:
            assert isinstance(d, Detection)
            assert 0 <= d.score <= 1
        hits, false = _match(detections, boxes)
        found += hits
        total_false += false
    min_found, max_false = BARS.get(detector.name, DEFAULT_BAR)
    assert found >= min_found, f"{detector.name} found {found}/25 labelled faces"
    assert total_false <= max_false, f"{detector.name} reported {total_false} false positives"


def test_landmarks_are_in_the_face(detector, photos: Path) -> None:
    image = cv2.imread(str(photos / "group" / "multiface.jpg"))
    detections = detector.detect(image)
    assert len(detections) >= 5
    for d in detections:
        if d.landmarks is None:
            continue
        x0, y0, x1, y1 = d.box.xyxy
        for p in d.landmarks:
            assert x0 - 5 <= p.x <= x1 + 5 and y0 - 5 <= p.y <= y1 + 5
        assert d.landmarks.left_eye.x < d.landmarks.right_eye.x  # image-left eye first
        assert d.landmarks.nose.y > min(d.landmarks.left_eye.y, d.landmarks.right_eye.y)


def test_no_faces_in_blank_images(detector) -> None:
    for image in (np.zeros((480, 640, 3), np.uint8), np.full((48, 48, 3), 200, np.uint8)):
        assert detector.detect(image) == []


def test_tiny_images_find_nothing_and_leave_the_detector_usable(detector, photos: Path) -> None:
    """A 1x1 image made dlib's CNN raise, and the next call crashed the process (double free)."""
    photo = cv2.imread(str(photos / "group" / "multiface.jpg"))
    for size in [(1, 1), (3, 2), (8, 5), (32, 17), (17, 32)]:
        assert detector.detect(cv2.resize(photo, size, interpolation=cv2.INTER_AREA)) == []
    assert len(detector.detect(photo)) >= 5


def test_yunet_finds_no_faces_on_dogs(photos: Path) -> None:
    yunet = create_detector("yunet")
    assert yunet is not None
    assert yunet.detect(cv2.imread(str(photos / "dlib-faces" / "dogs.jpg"))) == []


def test_retinaface_runs_in_float32_and_matches_full_size(photos: Path) -> None:
    image = cv2.imread(str(photos / "dlib-faces" / "bald_guys.jpg"))
    full = create_detector("retinaface-mobilenet", max_side=None)
    assert full is not None
    assert len(full.detect(image)) >= 24


def test_yunet_downscales_large_images_and_maps_boxes_back(photos: Path) -> None:
    image = cv2.imread(str(photos / "group" / "multiface.jpg"))
    full = create_detector("yunet", max_side=None)
    small = create_detector("yunet", max_side=600)
    assert full is not None and small is not None
    a = sorted(full.detect(image), key=lambda d: d.box.x)
    b = sorted(small.detect(image), key=lambda d: d.box.x)
    assert len(a) == len(b) == 6
    for da, db in zip(a, b, strict=True):
        assert da.box.iou(db.box) > 0.7


def test_yunet_drops_rows_that_are_not_finite(photos: Path) -> None:
    """OpenCV 4.14 sometimes returns an inf box with score 1.0 for a 32x17 input (10 of 300 fresh detectors).

    Such rows, and boxes off the image, are garbage, not faces: they are skipped instead of failing the image.
    """
    yunet = create_detector("yunet", max_side=None, engine="opencv")
    assert yunet is not None
    image = cv2.imread(str(photos / "group" / "multiface.jpg"))
    found = yunet.detect(image)
    real = np.array([[d.box.x, d.box.y, d.box.width, d.box.height] + [0.0] * 10 + [d.score] for d in found])
    boxes = [[np.inf, 1, 5, 5], [1, 1, np.nan, 5], [-1e27, 5, 1e27, 0], [1e6, 1e6, 9, 9]]  # last: off the image
    junk = np.array([b + [0.0] * 10 + [1.0] for b in boxes], np.float32)

    class Net:
        def setInputSize(self, size: tuple[int, int]) -> None:
            pass

        def detect(self, _: np.ndarray) -> tuple[int, np.ndarray]:
            return 1, np.concatenate([real, junk])

    yunet._net = Net()  # type: ignore[attr-defined]
    assert len(yunet.detect(image)) == len(real) == 6


def _yunet_rows(detections: list[Detection]) -> np.ndarray:
    """Box, landmarks and score of each detection, sorted by position: comparable across engines."""
    rows = [
        [*d.box.xyxy, *(c for p in (d.landmarks or ()) for c in (p.x, p.y)), d.score]
        for d in sorted(detections, key=lambda d: (d.box.x, d.box.y))
    ]
    return np.array(rows, dtype=np.float64).reshape(len(rows), 15)


def test_yunet_engines_find_the_same_faces(photos: Path) -> None:
    """onnxruntime (the default where installed) and OpenCV run the same graph: the same faces, boxes to the
    pixel, landmarks within a pixel and scores within 1e-3, on every photo of ../shared at five sizes."""
    on_ort = create_detector("yunet", engine="onnxruntime")
    on_cv = create_detector("yunet", engine="opencv")
    assert on_ort is not None and on_cv is not None
    assert (on_ort.engine, on_cv.engine, create_detector("yunet").engine) == ("onnxruntime", "opencv", "onnxruntime")
    faces = 0
    for path in [*sorted((photos / "dlib-faces").glob("*.jpg")), photos / "group" / "multiface.jpg"]:
        photo = cv2.imread(str(path))
        for scale in (1.0, 0.6, 0.3, 0.1, 0.03):
            image = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else photo
            a, b = _yunet_rows(on_ort.detect(image)), _yunet_rows(on_cv.detect(image))
            assert a.shape == b.shape, f"{path.name} at {scale}: {len(a)} faces on onnxruntime, {len(b)} on OpenCV"
            if len(a):
                assert np.abs(a[:, :4] - b[:, :4]).max() <= 1
                assert np.abs(a[:, 4:-1] - b[:, 4:-1]).max() <= 1
                assert np.abs(a[:, -1] - b[:, -1]).max() <= 1e-3
            faces += len(a)
    assert faces >= 200


@pytest.mark.parametrize("name", ["dlib-hog", "dlib-cnn"])
def test_dlib_upsample_is_bounded_before_anything_runs(name: str) -> None:
    """upsample 3 took 8.6 s and 0.8 GB on a 1200x630 photo, 5 more than a minute, 8 tens of GB (each step
    doubles both sides): at most 2, checked with the other options, before dlib is even imported."""
    with pytest.raises(InvalidOptionError, match=r"'upsample' of .* is 3; at most 2"):
        create_detector(name, upsample=3)


def test_yunet_engine_option_is_checked_and_falls_back_without_onnxruntime(
    photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InvalidOptionError, match=r"'engine'.*'auto', 'onnxruntime', 'opencv'"):
        create_detector("yunet", engine="tensorrt")
    with pytest.raises(InvalidOptionError, match=r"'engine'.*must be str"):
        create_detector("yunet", engine=1)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(MissingDependencyError, match="onnxruntime"):
        create_detector("yunet", engine="onnxruntime")
    fallback = create_detector("yunet")
    assert fallback is not None and fallback.engine == "opencv"
    assert len(fallback.detect(cv2.imread(str(photos / "group" / "multiface.jpg")))) == 6


def test_yunet_on_onnxruntime_uses_torchs_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """emolens batch workers set torch's thread count; the detector's onnxruntime pool follows it."""
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        yunet = create_detector("yunet", engine="onnxruntime")
    finally:
        torch.set_num_threads(before)
    assert yunet._session.get_session_options().intra_op_num_threads == 1  # type: ignore[attr-defined]


def test_bundled_yunet_is_opencv_zoos_graph_with_an_open_input_size() -> None:
    """The bundled file is what tools/yunet_any_size.py makes of OpenCV Zoo's: same nodes and weights."""
    onnx = pytest.importorskip("onnx")
    from tools.yunet_any_size import UPSTREAM_NAME, any_size

    from emolens.weights import fetch

    upstream = shared_path("weights", UPSTREAM_NAME).read_bytes()
    bundled = onnx.load(str(fetch(DETECTORS.get("yunet").weights[0])))
    assert onnx.load_from_string(any_size(upstream)) == bundled
    original = onnx.load_from_string(upstream)
    assert list(original.graph.node) == list(bundled.graph.node)
    assert list(original.graph.initializer) == list(bundled.graph.initializer)
    dims = [d.dim_param or d.dim_value for d in bundled.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, "height", "width"]


def test_yunet_on_onnxruntime_drops_rows_that_are_not_finite(photos: Path) -> None:
    """A box size of exp(huge) is inf: such anchors are dropped before NMS, the real faces stay."""
    yunet = create_detector("yunet", max_side=None, engine="onnxruntime")
    assert yunet is not None
    image = cv2.imread(str(photos / "group" / "multiface.jpg"))
    real = yunet._session  # type: ignore[attr-defined]

    class Session:
        def run(self, names: object, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
            outputs = dict(zip(yunet._outputs, real.run(names, feed), strict=True))  # type: ignore[attr-defined]
            for kind in ("cls_8", "obj_8"):
                outputs[kind][0, :5] = 1.0  # five confident anchors ...
            outputs["bbox_8"][0, :5, 2:] = 1e4  # ... whose size overflows
            outputs["bbox_8"][0, 5, 0] = np.nan
            return [outputs[name] for name in yunet._outputs]  # type: ignore[attr-defined]

    yunet._session = Session()  # type: ignore[attr-defined]
    assert len(yunet.detect(image)) == 6
    assert yunet.detect(np.zeros((0, 0, 3), np.uint8)) == []


def test_yunet_falls_back_to_opencv_for_a_graph_onnxruntime_cannot_run(photos: Path) -> None:
    """OpenCV Zoo's own file declares a 640x640 input, which onnxruntime holds it to: with ``engine="auto"``
    YuNet says so and runs on OpenCV; asked for onnxruntime, it refuses with a ModelError naming the fix."""
    import dataclasses
    import warnings

    from tools.yunet_any_size import UPSTREAM_NAME

    from emolens import EmolensWarning, ModelError
    from emolens.detectors.yunet import YuNetDetector
    from emolens.weights import sha256_of

    upstream = shared_path("weights", UPSTREAM_NAME)
    yunet = DETECTORS.get("yunet")
    weights = dataclasses.replace(
        yunet.weights[0], name=UPSTREAM_NAME, sha256=sha256_of(upstream), path=str(upstream), bundled=False
    )
    spec = dataclasses.replace(yunet, weights=(weights,), options={})
    with pytest.warns(EmolensWarning, match="YuNet runs on OpenCV"):
        fallback = YuNetDetector(spec)
    assert fallback.engine == "opencv"
    assert len(fallback.detect(cv2.imread(str(photos / "group" / "multiface.jpg")))) == 6
    with pytest.raises(ModelError, match=r"open input size.*tools.yunet_any_size"):
        YuNetDetector(spec, engine="onnxruntime")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the bundled graph: no warning
        assert YuNetDetector(yunet).engine == "onnxruntime"
