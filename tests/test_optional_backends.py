"""Optional backends: dlib, the retina-face package, and the errors when they are missing."""

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from emolens import Detection, MissingDependencyError, WeightsUnavailableError, create_detector
from emolens.detectors import DETECTORS

PHOTO = Path("group") / "multiface.jpg"


@pytest.mark.parametrize("name", [s.name for s in DETECTORS.specs() if s.extra])
def test_missing_extra_names_the_pip_command(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = DETECTORS.get(name)
    for module in spec.requires:
        for loaded in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
            monkeypatch.delitem(sys.modules, loaded)
        monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(MissingDependencyError, match=rf"pip install 'emolens\[{spec.extra}\]'") as info:
        create_detector(name)
    assert info.value.extra == spec.extra
    assert isinstance(info.value, ImportError)


def test_dlib_cnn_weights_are_unpacked_and_verified(empty_home: Path, shared: Path, monkeypatch, serve) -> None:
    pytest.importorskip("dlib")
    monkeypatch.setenv("EMOLENS_MIRROR", serve(shared / "weights"))
    detector = create_detector("dlib-cnn")
    assert detector is not None
    assert (empty_home / "mmod_human_face_detector.dat").is_file()
    (empty_home / "mmod_human_face_detector.dat").write_bytes(b"tampered")
    monkeypatch.setenv("EMOLENS_OFFLINE", "1")  # the verified archive is cached: unpacking needs no network
    assert create_detector("dlib-cnn") is not None


@pytest.fixture
def generated_retinaface_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The retina-face package's real weights cannot be downloaded here, so generate weights for its
    architecture whose output is known: no face at strides 8 and 16, and every stride-32 anchor a
    face (score 0.99995) with zero box/landmark offsets. The package's NMS then keeps a handful of
    anchor boxes, which exercises the adapter end to end: engine, weight loading, parsing."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("retinaface")
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))
    monkeypatch.setenv("DEEPFACE_BACKEND_ENGINE", "pytorch")
    from retinaface.model.retinaface_pth_model import RetinaFace

    torch.manual_seed(0)
    state = RetinaFace().state_dict()
    for stride, logit in ((8, -10.0), (16, -10.0), (32, 5.0)):
        head = f"face_rpn_stride{stride}"
        state[f"{head}.cls_score.weight"].zero_()
        state[f"{head}.cls_score.bias"].copy_(torch.tensor([-logit, -logit, logit, logit]))  # [bg, bg, face, face]
        for part in ("bbox_pred", "landmark_pred"):
            state[f"{head}.{part}.weight"].zero_()
            state[f"{head}.{part}.bias"].zero_()
    weights = tmp_path / ".deepface" / "weights" / "retinaface.pth"
    weights.parent.mkdir(parents=True)
    torch.save(state, weights)
    return weights


def test_retinaface_package_adapter_runs_on_its_pytorch_engine(
    generated_retinaface_weights: Path, photos: Path
) -> None:
    detector = create_detector("retinaface")
    assert detector is not None
    image = cv2.imread(str(photos / PHOTO))
    detections = detector.detect(image)
    from retinaface.commons import backend_utils

    assert backend_utils.get_backend_engine() == "pytorch"
    assert detections, "every stride-32 anchor is a face with these weights"
    height, width = image.shape[:2]
    for d in detections:
        assert isinstance(d, Detection) and d.landmarks is not None
        assert d.score == pytest.approx(1 / (1 + np.exp(-10)), abs=1e-3)
        x0, y0, x1, y1 = d.box.xyxy
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height  # package boxes are clipped to the image
        assert d.landmarks.left_eye.x <= d.landmarks.right_eye.x


def test_retinaface_package_offline_without_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("retinaface")
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))
    monkeypatch.setenv("EMOLENS_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match=r"retinaface\.pth"):
        create_detector("retinaface")


def test_haar_still_works_beside_opencv_contrib(photos: Path) -> None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        contrib = version("opencv-contrib-python-headless")
    except PackageNotFoundError:
        pytest.skip("the retinaface extra is not installed")
    assert contrib == version("opencv-python-headless"), "both cv2 distributions must be the same release"
    assert cv2.__version__.startswith("4.")
    haar = create_detector("haar")
    assert haar is not None and len(haar.detect(cv2.imread(str(photos / PHOTO)))) >= 5
