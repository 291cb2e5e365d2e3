"""Every supported input loads to the same BGR uint8 array; every bad input is an InvalidImageError."""

from pathlib import Path

import cv2
import numpy as np
import pytest

import emolens
from emolens import InvalidImageError, load_image

PHOTO = Path("dlib-faces") / "2008_002470.jpg"


@pytest.fixture(scope="module")
def bgr(photos: Path) -> np.ndarray:
    image = cv2.imread(str(photos / PHOTO))
    assert image is not None
    return image


def test_path_str_bytes_and_arrays_agree(photos: Path, bgr: np.ndarray) -> None:
    path = photos / PHOTO
    assert np.array_equal(load_image(path).bgr, bgr)
    assert np.array_equal(load_image(str(path)).bgr, bgr)
    assert load_image(str(path)).source == str(path)
    assert np.array_equal(load_image(path.read_bytes()).bgr, bgr)
    assert np.array_equal(load_image(bgr).bgr, bgr)
    assert np.array_equal(load_image(bgr[:, :, ::-1], color="rgb").bgr, bgr)
    floats = bgr.astype(np.float32) / 255
    assert np.abs(load_image(floats).bgr.astype(int) - bgr).max() <= 1


def test_gray_and_alpha_inputs(bgr: np.ndarray) -> None:
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    for array in (gray, gray[:, :, None]):
        out = load_image(array).bgr
        assert out.shape == (*gray.shape, 3) and out.dtype == np.uint8
        assert np.array_equal(out[:, :, 0], gray)
    bgra = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
    assert np.array_equal(load_image(bgra).bgr, bgr)
    rgba = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGBA)
    assert np.array_equal(load_image(rgba, color="rgb").bgr, bgr)


def test_pil_images_are_rgb(photos: Path, bgr: np.ndarray) -> None:
    pil = pytest.importorskip("PIL.Image")
    with pil.open(photos / PHOTO) as im:
        loaded = load_image(im).bgr
    # Pillow and OpenCV use different JPEG decoders: allow tiny differences.
    assert loaded.shape == bgr.shape
    assert np.abs(loaded.astype(int) - bgr).mean() < 2


def test_a_pil_image_is_upright_as_its_exif_orientation_says(photos: Path, bgr: np.ndarray, tmp_path: Path) -> None:
    """A phone photo stored sideways with EXIF orientation 6 loads upright from a PIL image, as from its path or
    bytes (OpenCV applies the orientation; PIL inputs were sideways: 1 face found of 6)."""
    pil = pytest.importorskip("PIL.Image")
    sideways = tmp_path / "sideways.jpg"
    exif = pil.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    pil.fromarray(np.ascontiguousarray(np.rot90(bgr[:, :, ::-1]))).save(sideways, exif=exif, quality=95)
    from_path = load_image(sideways).bgr
    with pil.open(sideways) as im:
        from_pil = load_image(im).bgr
    assert from_path.shape == from_pil.shape == bgr.shape
    assert np.abs(from_pil.astype(int) - from_path).mean() < 2
    assert len(emolens.analyze(sideways).faces) == len(emolens.analyze(pil.open(sideways)).faces) == 6


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((0, 10, 3), np.uint8), "empty"),
        (np.zeros((10, 10, 2), np.uint8), "shape"),
        (np.zeros((2, 10, 10, 3), np.uint8), "shape"),
        (np.zeros(10, np.uint8), "shape"),
        (np.zeros((10, 10), np.int64), "dtype"),
        (np.zeros((10, 10), bool), "dtype"),
        (np.full((10, 10), 2.0, np.float32), r"\[0, 1\]"),
        (np.full((10, 10), np.nan, np.float32), "NaN"),
        (b"", "empty"),
        (b"definitely not an image", "cannot decode"),
        (12345, "unsupported image type"),
        (None, "unsupported image type"),
    ],
)
def test_bad_inputs_raise_invalid_image_error(bad: object, message: str) -> None:
    with pytest.raises(InvalidImageError, match=message):
        load_image(bad)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError, match="not found"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(InvalidImageError, match="directory"):
        load_image(tmp_path)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 20)
    with pytest.raises(InvalidImageError, match="cannot decode"):
        load_image(truncated)
    with pytest.raises(ValueError):  # InvalidImageError is also a ValueError
        load_image(tmp_path / "missing.jpg")


def test_bad_color_order(bgr: np.ndarray) -> None:
    with pytest.raises(emolens.InvalidOptionError, match="'bgr' or 'rgb'"):
        load_image(bgr, color="hsv")  # type: ignore[arg-type]


def test_analyze_surfaces_the_same_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError):
        emolens.analyze(tmp_path / "missing.png")
    with pytest.raises(InvalidImageError):
        emolens.analyze(np.zeros((5, 5, 7), np.uint8))
