"""Property-based fuzzing of every public input path: whatever goes in, either a result or an emolens error
comes out, in bounded time and memory (each case may add at most ``MAX_CASE_MB`` of peak memory).

Covered: mutated and truncated real images, random bytes behind real magic numbers, header bombs, PNG
chunk lengths that lie, TIFF directories with duplicated or oversized tags, every BMP header layout,
arrays of any dtype, shape and strides, hostile paths, lazily loaded PIL images, images with a side
beyond OpenCV's 32,767-pixel limit, every Analyzer argument with values of any type, custom detectors
returning anything, and threads. The default run is a seeded sample (1,070 generated cases); ``pytest
--fuzz-long`` runs 3,000 per property (21,000 in all; ``--fuzz-cases N`` sets the number)."""

from __future__ import annotations

import io
import os
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image, PngImagePlugin
from tools.hostile import bmp, jpeg_with_scans, peak_memory, png_chunks, png_with_chunk_length, tall_with_face, tiff

import emolens
from emolens import Analyzer, EmolensError

from .conftest import SHARED

SHARED_PHOTO = SHARED / "images" / "dlib-faces" / "2008_002470.jpg"
ANALYZERS = {"yunet": None, "none": None}
#: Generated cases run in this session (reported at the end of a pytest run, see conftest.py).
CASES = [0]
#: The bound on the memory one analysis may add, whatever the input (docs/reliability.md).
MAX_CASE_MB = 1024


def _analyzer(detector: str) -> Analyzer:
    if ANALYZERS[detector] is None:
        ANALYZERS[detector] = Analyzer(None if detector == "none" else detector, "fast")
    analyzer = ANALYZERS[detector]
    assert analyzer is not None
    return analyzer


def _examples(request: pytest.FixtureRequest, default: int) -> int:
    """The seeded sample CI runs, or ``--fuzz-cases`` per property with ``--fuzz-long`` (3,000: 21,000 in all)."""
    return int(request.config.getoption("--fuzz-cases")) if request.config.getoption("--fuzz-long") else default


def _check(value: object, detector: str = "yunet") -> None:
    """The property: a typed result or an EmolensError, never anything else, adding at most MAX_CASE_MB of memory."""
    with peak_memory() as memory:
        try:
            result = _analyzer(detector).analyze(value)
        except EmolensError:
            result = None
    assert not memory.mb > MAX_CASE_MB, f"{memory.mb:.0f} MB for one case"
    for face in result.faces if result is not None else ():
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
        CASES[0] += 1
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
        CASES[0] += 1
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
        CASES[0] += 1
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


# --- Hardening round 2: what a decoder really allocates, options, detector output, huge sides, threads ----------


def test_png_chunk_lengths_that_lie(request: pytest.FixtureRequest) -> None:
    """A small PNG whose chunk claims up to 4 GB cost OpenCV's reader that much: refused before decoding."""
    chunks = len(png_chunks(SAMPLES["png"]))

    @settings(max_examples=_examples(request, 60), deadline=5000, derandomize=True, database=None)
    @given(
        index=st.integers(0, chunks - 1),
        length=st.one_of(st.sampled_from([2**31 - 1, 2**32 - 1, 2**31, 2**30, 0]), st.integers(0, 2**32 - 1)),
        keep=st.one_of(st.none(), st.integers(0, 9000)),
    )
    def run(index: int, length: int, keep: int | None) -> None:
        CASES[0] += 1
        _check(png_with_chunk_length(SAMPLES["png"], index, length, keep))

    run()
    huge = png_with_chunk_length(SAMPLES["png"], 1, 2**32 - 1)
    with pytest.raises(emolens.InvalidImageError, match="chunk claims 4,294,967,295 bytes"):
        emolens.load_image(huge)


TIFF_TAGS = [256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 322, 323, 324, 325]


def test_tiff_directories_with_duplicated_or_oversized_tags(request: pytest.FixtureRequest) -> None:
    """Duplicated size tags (libtiff reads the first, a naive reader the last) and tiles larger than the image."""
    photo = cv2.imdecode(np.frombuffer(SAMPLES["png"], np.uint8), cv2.IMREAD_COLOR)

    @settings(max_examples=_examples(request, 60), deadline=5000, derandomize=True, database=None)
    @given(
        extra=st.lists(
            st.tuples(
                st.sampled_from(TIFF_TAGS),
                st.sampled_from([3, 4]),
                st.one_of(st.integers(0, 70_000), st.just(2**32 - 1)),
            ),
            max_size=4,
        ),
        big_endian=st.booleans(),
    )
    def run(extra: list[tuple[int, int, int]], big_endian: bool) -> None:
        CASES[0] += 1
        _check(tiff(photo, extra, big_endian=big_endian))

    run()
    assert emolens.load_image(tiff(photo)).bgr.shape == photo.shape  # a well-formed one decodes
    with pytest.raises(emolens.InvalidImageError, match="lists tag 256 twice"):
        emolens.load_image(tiff(photo, [(256, 4, 20_000), (257, 4, 20_000)]))


def test_bmp_header_layouts() -> None:
    """OS/2 1.x BMPs (12-byte header, 16-bit sizes) decode at their real size; unknown layouts are refused."""
    photo = cv2.imdecode(np.frombuffer(SAMPLES["png"], np.uint8), cv2.IMREAD_COLOR)
    for size in (12, 40, 108, 124):
        assert emolens.load_image(bmp(photo, size)).bgr.shape == photo.shape
    for size in (0, 13, 39, 1 << 20):
        with pytest.raises(emolens.InvalidImageError, match="BMP header"):
            emolens.load_image(bmp(photo, size))


def test_jpeg_scans_and_segments_are_counted_before_decoding() -> None:
    """Each scan makes libjpeg pass over the whole image again, so a few bytes per empty scan cost seconds:
    more than 100 scans (or 10,000 marker segments) are refused unread; progressive and restart-marker JPEGs,
    and one of exactly 100 scans, decode."""
    photo = cv2.imdecode(np.frombuffer(SAMPLES["png"], np.uint8), cv2.IMREAD_COLOR)
    progressive = bytes(cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1])
    restarts = bytes(cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_RST_INTERVAL, 1])[1])
    scans = progressive.count(b"\xff\xda")  # entropy-coded data never holds 0xFFDA (0xFF is followed by 0x00)
    assert scans > 1
    for data in (progressive, restarts, jpeg_with_scans(progressive, 100 - scans)):
        assert emolens.load_image(data).bgr.shape == photo.shape
    with pytest.raises(emolens.InvalidImageError, match="more than 100 scans"):
        emolens.load_image(jpeg_with_scans(progressive, 101 - scans))
    comments = progressive[:2] + b"\xff\xfe\x00\x02" * 10_001 + progressive[2:]
    with pytest.raises(emolens.InvalidImageError, match="more than 10,000 JPEG marker segments"):
        emolens.load_image(comments)
    # Scans hidden from a walk that would read junk as a segment: libjpeg skips an escaped 0xFF between segments
    # and reads on after a length under 2, so both are walked (or refused) the way libjpeg reads them.
    end = progressive.rindex(b"\xff\xd9")
    extra = jpeg_with_scans(progressive, 101 - scans)[end:-2]
    with pytest.raises(emolens.InvalidImageError, match="more than 100 scans"):
        emolens.load_image(progressive[:end] + b"\xff\xfe\x00\x02\xff\x00\x7f\xff" + extra + b"\xff\xd9")
    with pytest.raises(emolens.InvalidImageError, match="not JPEG"):
        emolens.load_image(progressive[:end] + b"\xff\xfe\x00\x00" + extra + b"\xff\xd9")
    # a marker found in the last bytes of a truncated file is the decoder's to judge, not a header error
    with pytest.raises(emolens.InvalidImageError, match="corrupt or truncated"):
        emolens.load_image(progressive[:end] + b"\x00\x00\xff\xc4")


def test_png_text_and_image_data_are_bounded_before_decoding() -> None:
    """libpng inflates and keeps up to 1,000 compressed text chunks (8 MB each) and inflates every IDAT byte
    however small the image: 8 MB of zTXt chunks held 8 GB, 9.8 MB of IDAT for 8x8 pixels 20 s of one core.
    Both are refused unread, in bounded time; a real photo with a large ICC profile and a compressed XMP
    packet, at every zlib level and interlaced, still decodes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
    pixels = chunk(b"IDAT", zlib.compress(b"\x00" * 25 * 8)) + chunk(b"IEND", b"")
    text = zlib.compress(b"a" * 1_000_000, 9)  # 1 KB inflating to 1 MB, nine times
    for kind, body in ((b"zTXt", b"k\0\0" + text), (b"iTXt", b"k\0\x01\0en\0\0" + text), (b"iCCP", b"p\0\0" + text)):
        started = time.perf_counter()
        with pytest.raises(emolens.InvalidImageError, match="inflate to more than 8 MB"):
            emolens.load_image(b"\x89PNG\r\n\x1a\n" + ihdr + chunk(kind, body) * 9 + pixels)
        assert time.perf_counter() - started < 2
    zeros = zlib.compressobj(9)
    flood = b"".join(zeros.compress(bytes(1 << 20)) for _ in range(200)) + zeros.flush()  # 200 MB of zeros
    with pytest.raises(emolens.InvalidImageError, match="far more than a 8x8 image can hold"):
        emolens.load_image(b"\x89PNG\r\n\x1a\n" + ihdr + chunk(b"IDAT", flood) + chunk(b"IEND", b""))

    photo = cv2.imdecode(np.frombuffer(SAMPLES["png"], np.uint8), cv2.IMREAD_COLOR)
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>" + "x" * 3_000_000, zip=True)
    for options in ({"compress_level": 0}, {"compress_level": 9, "interlace": 1}, {"optimize": True}):
        buffer = io.BytesIO()
        rgb = Image.fromarray(photo[..., ::-1])
        rgb.save(buffer, "PNG", icc_profile=bytes(range(256)) * 4_000, pnginfo=info, **options)
        assert emolens.load_image(buffer.getvalue()).bgr.shape == photo.shape


def _face_photo() -> np.ndarray:
    return cv2.imread(str(SHARED_PHOTO)) if SHARED_PHOTO.is_file() else np.full((120, 160, 3), 128, np.uint8)


class _FixedDetector:
    """A custom detector that returns whatever it is given."""

    name = "fixed"

    def __init__(self, output: object) -> None:
        self.output = output

    def detect(self, image: np.ndarray) -> object:
        return self.output


_numbers = st.one_of(
    st.integers(-(10**9), 10**9),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([np.int64(7), np.float32(3.5), 0, -1, 40_000]),
)


def test_custom_detector_output_is_validated(request: pytest.FixtureRequest) -> None:
    """Whatever a custom detector returns: a result or an error naming the detector, in bounded memory."""
    model = _analyzer("none").model
    image = _face_photo()
    boxes = st.builds(emolens.Box, _numbers, _numbers, _numbers, _numbers)
    detections = st.builds(emolens.Detection, boxes, _numbers)
    outputs = st.one_of(
        st.none(),
        st.integers(),
        st.text(max_size=3),
        st.lists(st.one_of(detections, st.integers(), st.none()), max_size=3),
    )

    @settings(max_examples=_examples(request, 100), deadline=5000, derandomize=True, database=None)
    @given(output=outputs)
    def run(output: object) -> None:
        CASES[0] += 1
        analyzer = Analyzer(_FixedDetector(output), model)
        with peak_memory() as memory:
            try:
                result = analyzer.analyze(image)
            except EmolensError as exc:
                assert "fixed" in str(exc)
            else:
                for face in result.faces:
                    assert 0 <= face.box.x < image.shape[1] and 0 <= face.box.y < image.shape[0]
        assert not memory.mb > MAX_CASE_MB

    run()


_anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), st.integers(), max_size=2),
)


def test_every_argument_is_validated(request: pytest.FixtureRequest) -> None:
    """Any value for any argument: it works, or an InvalidOptionError that names the argument."""
    model = _analyzer("none").model
    image = _face_photo()
    names = ["fallback", "min_face_size", "align", "margin", "max_pixels", "detector_options", "device"]

    @settings(max_examples=_examples(request, 150), deadline=10_000, derandomize=True, database=None)
    @given(name=st.sampled_from(names), value=_anything, per_call=st.booleans())
    def run(name: str, value: object, per_call: bool) -> None:
        CASES[0] += 1
        try:
            if per_call and name in ("fallback", "min_face_size"):
                Analyzer("haar", model).analyze(image, **{name: value})  # type: ignore[arg-type]
            else:
                Analyzer("haar", model, **{name: value}).analyze(image)  # type: ignore[arg-type]
        except emolens.InvalidOptionError as exc:
            assert exc.option in (name, "detector") or name == "detector_options", (name, value, exc)
        except emolens.UnknownNameError:
            assert name == "detector_options"
        except emolens.ImageTooLargeError:
            assert name == "max_pixels"

    run()
    for name, value in [("fallback", "no"), ("margin", float("nan")), ("max_pixels", float("nan")), ("margin", 1e3)]:
        with pytest.raises(emolens.InvalidOptionError, match=name):
            Analyzer("haar", model, **{name: value})  # type: ignore[arg-type]
    for bad in (None, "photo.jpg", SAMPLES["jpg"], 3):
        with pytest.raises(emolens.InvalidOptionError, match="list of images"):
            Analyzer("haar", model).analyze_batch(bad)  # type: ignore[arg-type]
    with pytest.raises(emolens.InvalidOptionError, match="device"):
        Analyzer("haar", model, device="cpu:1")
    with pytest.raises(EmolensError, match="empty"):
        Analyzer("haar", "")


def test_released_memoryview_is_an_image_error() -> None:
    view = memoryview(bytearray(SAMPLES["jpg"]))
    view.release()
    with pytest.raises(emolens.InvalidImageError, match="released"):
        emolens.load_image(view)


def test_sides_beyond_opencvs_addressing_limit() -> None:
    """A 68x32768 image with a face: crops of such images used to fail in OpenCV's remap (SHRT_MAX)."""
    tall = tall_with_face(_face_photo())
    wide = np.ascontiguousarray(np.swapaxes(tall, 0, 1))
    model = _analyzer("none").model
    for image in (tall, wide):
        for detector in ("haar", "yunet"):
            for options in ({}, {"max_side": None}):
                _check(image, "none")
                Analyzer(detector, model, detector_options=options).analyze(image)
        height, width = image.shape[:2]
        huge = emolens.Detection(emolens.Box(0, 0, width, height), 1.0)
        result = Analyzer(_FixedDetector([huge]), model).analyze(image)
        assert len(result.faces) == 1


@pytest.mark.parametrize("detector", ["haar", "yunet"])
def test_threads_give_the_single_thread_answer(detector: str, photos: Path) -> None:
    """8 threads sharing one Analyzer: every result equals the single-threaded one, faces in the same order."""
    import concurrent.futures

    analyzer = Analyzer(detector, "fast")
    images = sorted((photos / "dlib-faces").glob("*.jpg"))
    reference = {path: analyzer.analyze(path).faces for path in images}
    jobs = images * 6
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda path: (path, analyzer.analyze(path).faces), jobs))
    assert [path for path, faces in results if faces != reference[path]] == []


def test_a_large_jpeg_costs_under_the_bound_with_every_builtin_detector() -> None:
    """A 6324x6324 JPEG (just under 40 megapixels) used to take 2.2 GB with the Haar detector."""
    photo = cv2.resize(_face_photo(), (6324, 6324), interpolation=cv2.INTER_LINEAR)
    data = bytes(cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, 80])[1])
    del photo
    model = _analyzer("none").model
    for detector in ("haar", "yunet"):
        analyzer = Analyzer(detector, model)
        with peak_memory() as memory:
            analyzer.analyze(data)
        assert memory.mb < MAX_CASE_MB, f"{detector}: {memory.mb:.0f} MB"


def test_paths_that_are_not_regular_files_are_refused_unread(tmp_path: Path) -> None:
    """A FIFO named as a model card, a FER+ vote table or a labels file used to block forever."""
    from emolens.training import load_dataset

    fifo = tmp_path / "card.json"
    os.mkfifo(fifo)
    photo = _face_photo()
    with pytest.raises(emolens.WeightsError, match="not a regular file"):
        emolens.analyze(photo, model=str(fifo))
    data = tmp_path / "data"
    (data / "happy").mkdir(parents=True)
    cv2.imwrite(str(data / "happy" / "a.png"), np.zeros((48, 48), np.uint8))
    os.mkfifo(tmp_path / "votes.csv")
    with pytest.raises(emolens.DatasetError, match="not a regular file"):
        load_dataset(str(data), ferplus=str(tmp_path / "votes.csv"))


def test_batch_arguments_are_validated() -> None:
    for name, value in [("fallback", "no"), ("min_face_size", "20"), ("max_pixels", float("nan")), ("every", 0)]:
        with pytest.raises(emolens.InvalidOptionError, match=name):
            emolens.batch([], **{name: value})  # type: ignore[arg-type]
    with pytest.raises(emolens.InvalidOptionError, match="device"):
        emolens.batch([], device="cpu:1")


def test_what_the_checks_must_not_refuse() -> None:
    """Valid inputs around the new checks: numpy scalars, generators, unknown TIFF tags, big strips within budget."""
    model = _analyzer("none").model
    photo = cv2.imdecode(np.frombuffer(SAMPLES["png"], np.uint8), cv2.IMREAD_COLOR)
    analyzer = Analyzer("haar", model, min_face_size=np.int64(20), margin=np.float32(0.2), max_pixels=np.int64(10**6))
    assert len(analyzer.analyze_batch(iter([photo, photo]))) == 2  # any iterable of images
    # unknown tags may repeat or point past the end: only the size tags matter (libtiff ignores the rest)
    assert emolens.load_image(tiff(photo, [(700, 4, 10**9), (700, 4, 3)])).bgr.shape == photo.shape
    # tiles far larger than their image are malformed
    with pytest.raises(emolens.InvalidImageError, match="larger than the image"):
        emolens.load_image(tiff(photo, [(322, 4, 65_536), (323, 4, 65_536)]))
    with pytest.raises(emolens.ImageTooLargeError):
        emolens.load_image(memoryview(bytes(257 << 20)))
