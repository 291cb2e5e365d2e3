"""Hostile inputs, generated: files that are small but claim a lot, and ways to measure what they cost.

Shared by the fuzz tests (``tests/test_fuzz.py``) and the reliability figures
(``benchmarks/reliability.py``), so both exercise the same classes of input: PNG chunks whose length
field lies, TIFF directories with duplicated or oversized tags, BMP headers of every layout, progressive
JPEGs with thousands of empty scans, and images with a side beyond OpenCV's 32,767-pixel addressing
limit. Nothing here is a stored file: each input is built from a real image and a few numbers.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = [
    "PeakMemory",
    "bmp",
    "hostile_uploads",
    "jpeg_with_scans",
    "peak_memory",
    "png_chunk",
    "png_chunks",
    "png_with_chunk_length",
    "tall_with_face",
    "tiff",
]


def png_chunks(data: bytes) -> list[tuple[int, bytes]]:
    """(offset, type) of every chunk of a well-formed PNG."""
    chunks, position = [], 8
    while position + 8 <= len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        chunks.append((position, data[position + 4 : position + 8]))
        position += 12 + length
    return chunks


def png_with_chunk_length(data: bytes, index: int, length: int, keep: int | None = None) -> bytes:
    """``data`` with chunk ``index``'s length field set to ``length``; ``keep`` bytes of its body kept, if given."""
    offset, _ = png_chunks(data)[index]
    out = data[:offset] + struct.pack(">I", length & 0xFFFFFFFF) + data[offset + 4 :]
    return out if keep is None else out[: offset + 8 + keep]


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk: length, type, body and CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


# TIFF field types: BYTE 1, SHORT 3, LONG 4.
_SHORT, _LONG = 3, 4


def tiff(image: np.ndarray, extra: Sequence[tuple[int, int, int]] = (), *, big_endian: bool = False) -> bytes:
    """An uncompressed RGB TIFF of a BGR uint8 ``image`` (one strip), with ``extra`` (tag, type, value)
    entries appended to its first directory: duplicates and lies included, as given.

    Entries are written in the order given after the real ones (a directory should be sorted and name
    each tag once; hostile ones do not).
    """
    order = ">" if big_endian else "<"
    height, width = image.shape[:2]
    pixels = np.ascontiguousarray(image[:, :, ::-1]).tobytes()
    bits_offset = 8
    strip_offset = bits_offset + 8
    entries: list[tuple[int, int, int, int]] = [
        (256, _LONG, 1, width),
        (257, _LONG, 1, height),
        (258, _SHORT, 3, bits_offset),  # three values: stored at an offset
        (259, _SHORT, 1, 1),  # no compression
        (262, _SHORT, 1, 2),  # RGB
        (273, _LONG, 1, strip_offset),
        (277, _SHORT, 1, 3),
        (278, _LONG, 1, height),
        (279, _LONG, 1, len(pixels)),
    ]
    entries += [(tag, kind, 1, value) for tag, kind, value in extra]
    directory_offset = strip_offset + len(pixels) + (len(pixels) % 2)
    header = (b"MM\x00*" if big_endian else b"II*\x00") + struct.pack(order + "I", directory_offset)
    bits = struct.pack(order + "HHHH", 8, 8, 8, 0)
    body = pixels + b"\x00" * (len(pixels) % 2)
    directory = struct.pack(order + "H", len(entries))
    for tag, kind, count, value in entries:
        if kind == _SHORT and count == 1:
            value_bytes = struct.pack(order + "HH", value & 0xFFFF, 0)
        else:
            value_bytes = struct.pack(order + "I", value & 0xFFFFFFFF)
        directory += struct.pack(order + "HHI", tag, kind, count) + value_bytes
    directory += struct.pack(order + "I", 0)
    return header + bits + body + directory


def bmp(image: np.ndarray, header_size: int = 40) -> bytes:
    """A 24-bit BMP of a BGR uint8 ``image``: OS/2 1.x layout (16-bit sizes) when ``header_size`` is 12,
    else the Windows layout with the header size field set to ``header_size`` (which may be a lie)."""
    height, width = image.shape[:2]
    row = width * 3
    padding = (-row) % 4
    pixels = b"".join(image[y].tobytes() + b"\x00" * padding for y in range(height - 1, -1, -1))
    if header_size == 12:
        info = struct.pack("<IHHHH", 12, width, height, 1, 24)
    else:
        info = struct.pack("<IiiHHIIiiII", header_size, width, height, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
        info += b"\x00" * max(0, header_size - len(info))
    offset = 14 + len(info)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + pixels


def jpeg_with_scans(data: bytes, count: int) -> bytes:
    """A JPEG ``data`` with ``count`` more scans before its end: copies of its last scan's header with no data.

    Each costs a few bytes, yet makes libjpeg pass over the whole image again (warning about an inconsistent
    progression and filling in nothing): a few thousand of them in a progressive JPEG cost seconds to minutes."""
    start = data.rindex(b"\xff\xda")
    (length,) = struct.unpack(">H", data[start + 2 : start + 4])
    end = data.rindex(b"\xff\xd9")
    return data[:end] + data[start : start + 2 + length] * count + data[end:]


def tall_with_face(photo: np.ndarray) -> np.ndarray:
    """A 68x32768 image with ``photo`` shrunk into it: a side beyond OpenCV's 32,767-pixel addressing limit."""
    import cv2

    tall = np.zeros((32_768, 68, 3), np.uint8)
    tall[20_000:20_051] = cv2.resize(photo, (68, 51))
    return tall


def hostile_uploads(photo: np.ndarray) -> list[tuple[bytes, int]]:
    """Small files that used to cost a server gigabytes or minutes, each with the HTTP status it must get: two PNG
    chunk bombs, a TIFF with duplicated size tags, one with giant tiles, a 6324x6324 progressive JPEG with 2,000
    empty scans (400); an OS/2 BMP, a 6324x6324 JPEG and a 68x32768 JPEG (200)."""
    import cv2

    small = cv2.resize(photo, (96, 72))
    png = bytes(cv2.imencode(".png", small)[1])
    big = cv2.resize(photo, (6324, 6324))
    return [
        (png_with_chunk_length(png, 1, 2**32 - 1), 400),
        (png_with_chunk_length(png, 1, 2**31 - 1), 400),
        (tiff(small, [(256, 4, 30_000), (257, 4, 30_000)]), 400),
        (tiff(small, [(322, 4, 65_536), (323, 4, 65_536)]), 400),
        (jpeg_with_scans(bytes(cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1]), 2_000), 400),
        (bmp(small, 12), 200),
        (bytes(cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 70])[1]), 200),
        (bytes(cv2.imencode(".jpg", tall_with_face(photo))[1]), 200),
    ]


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


class PeakMemory:
    """Peak resident memory added by a block of code, in MB (Linux: the peak is reset before the block)."""

    def __init__(self) -> None:
        self.mb = 0.0


@contextmanager
def peak_memory() -> Iterator[PeakMemory]:
    """Measure the peak resident memory a block adds over what the process held when it began.

    Uses ``/proc/self/clear_refs`` to reset the kernel's high-water mark, so each block is measured on
    its own; where that is not possible (not Linux) the figure is NaN.
    """
    measured = PeakMemory()
    try:
        Path("/proc/self/clear_refs").write_text("5")
        before = _status_mb("VmRSS")
    except OSError:
        before = float("nan")
    try:
        yield measured
    finally:
        measured.mb = _status_mb("VmHWM") - before if before == before else float("nan")
