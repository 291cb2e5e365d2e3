"""Property-based fuzzing of every public input path: whatever goes in, either a result or an emolens error
comes out, in bounded time. The default run is a seeded sample; ``pytest --fuzz-long`` runs >= 10,000 cases."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import emolens
from emolens import Analyzer, EmolensError

from .conftest import SHARED

SHARED_PHOTO = SHARED / "images" / "dlib-faces" / "2008_002470.jpg"
ANALYZERS = {"yunet": None, "none": None}


def _analyzer(detector: str) -> Analyzer:
    if ANALYZERS[detector] is None:
        ANALYZERS[detector] = Analyzer(None if detector == "none" else detector, "fast")
    analyzer = ANALYZERS[detector]
    assert analyzer is not None
    return analyzer


def _examples(request: pytest.FixtureRequest, default: int) -> int:
    return 10_000 if request.config.getoption("--fuzz-long") else default


def _check(value: object, detector: str = "yunet") -> None:
    """The property: a typed result or an EmolensError, never anything else."""
    try:
        result = _analyzer(detector).analyze(value)
    except EmolensError:
        return
    assert isinstance(result, emolens.AnalysisResult)
    for face in result.faces:
        assert np.isclose(sum(face.probabilities), 1.0) and 0 <= face.confidence <= 1


def _png_header(width: int, height: int, depth: int = 8, color: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


def _encoded(kind: str) -> bytes:
    image = cv2.imread(str(SHARED_PHOTO)) if SHARED_PHOTO.is_file() else np.full((64, 64, 3), 128, np.uint8)
    image = cv2.resize(image, (96, 72))
    ok, data = cv2.imencode(f".{kind}", image)
    assert ok
    return bytes(data)


SAMPLES = {kind: _encoded(kind) for kind in ("jpg", "png", "tiff", "webp", "bmp")}

HEADER_BOMBS = [
    _png_header(100_000, 100_000),
    _png_header(32_000, 32_000),
    _png_header(0, 10),
    _png_header(2**31 - 1, 1),
    b"\xff\xd8\xff\xc0\x00\x11\x08\xff\xff\xff\xff\x03" + bytes(20),  # JPEG SOF claiming 65535 x 65535
    b"GIF89a" + struct.pack("<HH", 65535, 65535) + bytes(20),
    b"BM" + bytes(16) + struct.pack("<ii", 60_000, -60_000) + bytes(40),
    b"RIFF\x00\x00\x00\x00WEBPVP8X" + bytes(8) + b"\xff\xff\xff\xff\xff\xff",
    b"II*\x00\x08\x00\x00\x00\x02\x00"
    + struct.pack("<HHII", 256, 4, 1, 200_000)
    + struct.pack("<HHII", 257, 4, 1, 200_000),
    b"v/1\x01" + bytes(100),  # OpenEXR magic
    b"#?RADIANCE\n" + bytes(100),  # HDR
    b"P6\n99999 99999\n255\n" + bytes(10),  # PPM
    b"\x00\x00\x00\x0cjP  \r\n\x87\n" + bytes(100),  # JPEG 2000
]


@pytest.mark.parametrize("data", HEADER_BOMBS, ids=[f"bomb{i}" for i in range(len(HEADER_BOMBS))])
def test_header_bombs_are_refused_before_decoding(data: bytes) -> None:
    with pytest.raises(EmolensError):
        emolens.load_image(data)


def test_mutated_real_images(request: pytest.FixtureRequest) -> None:
    @settings(
        max_examples=_examples(request, 300),
        deadline=5000,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(
        kind=st.sampled_from(sorted(SAMPLES)),
        cut=st.integers(0, 5000),
        flips=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=8),
    )
    def run(kind: str, cut: int, flips: list[tuple[int, int]]) -> None:
        data = bytearray(SAMPLES[kind])
        for position, value in flips:
            data[position % len(data)] = value
        _check(bytes(data[: max(1, len(data) - cut)]))

    run()


def test_random_bytes(request: pytest.FixtureRequest) -> None:
    prefixes = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF\x00\x00\x00\x00WEBP", b"II*\x00", b"MM\x00*", b"BM"]

    @settings(max_examples=_examples(request, 200), deadline=5000, derandomize=True, database=None)
    @given(prefix=st.sampled_from(prefixes), body=st.binary(max_size=600))
    def run(prefix: bytes, body: bytes) -> None:
        _check(prefix + body)

    run()


def test_arrays_of_any_dtype_shape_and_strides(request: pytest.FixtureRequest) -> None:
    dtypes = st.sampled_from(
        [np.uint8, np.int8, np.uint16, np.int32, np.int64, np.float16, np.float32, np.float64, bool, np.complex64]
    )
    shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=40)

    @settings(
        max_examples=_examples(request, 200),
        deadline=5000,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(array=hnp.arrays(dtypes, shapes), step=st.integers(1, 3), detector=st.sampled_from(["yunet", "none"]))
    def run(array: np.ndarray, step: int, detector: str) -> None:
        strided = array[::step] if array.ndim else array
        _check(strided, detector)
        if array.ndim >= 2:
            _check(np.swapaxes(array, 0, 1), detector)

    run()


def test_extreme_but_valid_shapes() -> None:
    for shape in [(1, 4000, 3), (4000, 1, 3), (1, 1), (2, 2, 4), (3, 20_000), (16_001, 2)]:
        _check(np.zeros(shape, np.uint8))
        _check(np.zeros(shape, np.uint8), "none")


def test_path_likes(tmp_path: Path) -> None:
    class BytesPath(os.PathLike[bytes]):
        def __init__(self, path: bytes) -> None:
            self.path = path

        def __fspath__(self) -> bytes:
            return self.path

    class BrokenPath:
        def __fspath__(self) -> str:
            raise RuntimeError("no")

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(SAMPLES["jpg"][:200])
    inputs: list[object] = [
        "x" * 5000,
        "a/" * 3000,
        "\x00",
        "/dev/zero",
        "/dev/null",
        str(fifo),
        str(tmp_path),
        str(truncated),
        BytesPath(str(SHARED_PHOTO).encode()),
        BytesPath(b"\xff\xfe/not/utf8"),
        Path("/proc/self/mem"),
        "",
    ]
    for value in inputs:
        _check(value)
    with pytest.raises(EmolensError):
        _analyzer("none").analyze(BrokenPath())


def test_pil_images_lazily_loaded_and_truncated(tmp_path: Path) -> None:
    pil = pytest.importorskip("PIL.Image")
    truncated = tmp_path / "t.png"
    truncated.write_bytes(SAMPLES["png"][: len(SAMPLES["png"]) // 2])
    with pil.open(truncated) as image:  # lazily opened: the error comes when its pixels are read
        _check(image)
    with pil.open(io.BytesIO(SAMPLES["tiff"])) as image:
        _check(image)
    _check(pil.new("I;16", (50, 40)))
    with pytest.raises(emolens.ImageTooLargeError):  # 400 megapixels, refused before conversion
        emolens.load_image(pil.new("1", (20_000, 20_000)))
