import dataclasses
import subprocess
import sys

import numpy as np
import pytest

import emolens
from emolens import Box, Detection, DetectorSpec, EmolensError, ModelSpec, UnknownNameError
from emolens.detectors import DETECTORS
from emolens.errors import InvalidOptionError, ModelError
from emolens.models import MODELS


def test_builtins_are_listed() -> None:
    assert {"haar", "yunet"} <= set(emolens.list_detectors())
    assert "default" in emolens.list_models()
    assert emolens.list_detectors() == sorted(emolens.list_detectors())
    assert list(DETECTORS) == DETECTORS.names() and len(MODELS) == len(MODELS.names())
    assert "'yunet'" in repr(DETECTORS)


def test_listing_imports_no_heavy_backend() -> None:
    code = (
        "import sys, emolens; emolens.list_detectors(); emolens.list_models(); "
        "heavy = [m for m in ('torch', 'cv2', 'pooch', 'dlib') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_unknown_names_suggest_close_matches() -> None:
    with pytest.raises(UnknownNameError) as info:
        emolens.analyze(np.zeros((48, 48), np.uint8), detector="yunett")
    assert info.value.suggestions == ("yunet",)
    assert "Did you mean 'yunet'?" in str(info.value)
    assert isinstance(info.value, KeyError)
    with pytest.raises(UnknownNameError, match="unknown model 'defualt'"):
        MODELS.get("defualt")


class CenterDetector:
    """A toy detector: one face in the middle of every image."""

    name = "center"

    def __init__(self, spec: DetectorSpec, *, device: str = "cpu", fraction: float = 0.5) -> None:
        self.fraction = fraction

    def detect(self, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        fw, fh = int(w * self.fraction), int(h * self.fraction)
        return [Detection(Box((w - fw) // 2, (h - fh) // 2, fw, fh), 0.5)]


def test_register_a_custom_detector() -> None:
    spec = DetectorSpec(name="test-center", builder=CenterDetector, description="toy", options={"fraction": 0.5})
    emolens.register_detector(spec)
    try:
        assert "test-center" in emolens.list_detectors()
        with pytest.raises(EmolensError, match="already registered"):
            emolens.register_detector(spec)
        emolens.register_detector(spec, overwrite=True)
        result = emolens.analyze(np.zeros((100, 200, 3), np.uint8), detector="test-center")
        assert result.faces[0].box == Box(50, 25, 100, 50)
        assert result.faces[0].fallback is False
    finally:
        DETECTORS.unregister("test-center")
    assert "test-center" not in emolens.list_detectors()


@pytest.mark.usefixtures("registries")
def test_registrations_that_could_never_work_are_refused_and_broken_plugins_named() -> None:
    """ "auto" and "none" mean something else where a detector is asked for, so a detector registered under them
    was never used; a non-spec raised a bare AttributeError; a builder import string naming nothing raised the
    AttributeError the CLI reported as a bug in emolens."""
    for reserved in ("auto", "none", "None"):
        with pytest.raises(InvalidOptionError, match="cannot name a detector"):
            emolens.register_detector(DetectorSpec(name=reserved, builder=CenterDetector, description="toy"))
    with pytest.raises(InvalidOptionError, match="register a detector spec with a name, not str"):
        emolens.register_detector("notaspec")  # type: ignore[arg-type]
    emolens.register_detector(DetectorSpec(name="broken", builder="emolens.detectors:DoesNotExist", description="toy"))
    emolens.register_detector(
        DetectorSpec(name="absent", builder="no_such_package.detectors:Finder", description="toy")
    )
    with pytest.raises(ModelError, match=r"cannot import 'emolens.detectors:DoesNotExist' \(AttributeError"):
        emolens.analyze(np.zeros((100, 200, 3), np.uint8), detector="broken")
    with pytest.raises(ModelError, match="the plug-in that registered it is broken or not installed"):
        emolens.Analyzer(detector="absent")


@pytest.mark.usefixtures("registries")
def test_register_a_custom_model_reuses_the_pipeline() -> None:
    base = MODELS.get("default")
    spec = ModelSpec(
        name="test-copy", architecture=base.architecture, description="copy", options=base.options, weights=base.weights
    )
    emolens.register_model(spec)
    result = emolens.analyze(np.full((48, 48), 128, np.uint8), detector=None, model="test-copy")
    assert result.model == "test-copy"


def test_temporary_changes_are_undone() -> None:
    fast = MODELS.get("fast")
    with MODELS.temporary_changes():
        emolens.register_model(dataclasses.replace(fast, name="test-temporary"))
        emolens.register_model(dataclasses.replace(fast, description="changed"), overwrite=True)
        MODELS.unregister("default")
        assert "test-temporary" in MODELS and "default" not in MODELS
    assert "test-temporary" not in MODELS and "default" in MODELS and MODELS.get("fast") == fast


def test_entry_point_plugins_are_loaded_and_broken_ones_skipped(tmp_path, monkeypatch) -> None:
    """A package advertising a spec through the emolens.detectors entry-point group."""
    from emolens import Registry

    plugin = tmp_path / "emolens_test_plugin.py"
    plugin.write_text(
        "from emolens import DetectorSpec\n"
        "SPEC = DetectorSpec(name='plugin-detector', builder='emolens.detectors.haar:HaarDetector', description='x')\n"
    )
    dist = tmp_path / "emolens_test_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: emolens-test-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[emolens.test_detectors]\nplugin-detector = emolens_test_plugin:SPEC\nbroken = emolens_test_plugin:MISSING\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry: Registry[DetectorSpec] = Registry("detector", (), entry_point_group="emolens.test_detectors")
    with pytest.warns(emolens.EmolensWarning, match="ignoring detector entry point 'broken'"):
        assert registry.names() == ["plugin-detector"]


def test_download_unknown_name_suggests() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'yunet'"):
        emolens.download(["yunte"])
