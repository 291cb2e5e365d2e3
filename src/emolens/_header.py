"""Read an encoded image's format, pixel size and decoding cost from its header, without decoding it.

A small file can claim a huge image, or a huge PNG chunk, and cost gigabytes to decode: emolens
reads what the decoders will allocate from and refuses malformed or ambiguous structure (see
docs/reliability.md). Only JPEG, PNG, WebP, BMP, TIFF and GIF are recognised.
"""

from __future__ import annotations

import re
import struct
import zlib
from typing import NamedTuple

__all__ = ["FORMATS", "IMAGE_SUFFIXES", "Header", "MalformedImage", "signature", "sniff"]

FORMATS = ("JPEG", "PNG", "WebP", "BMP", "TIFF", "GIF")
#: File name suffixes of those formats: what a folder of images is searched for.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})

#: More chunks than this is not a picture (a 256 MB PNG written in libpng's 8 KB chunks has 32,000).
_MAX_PNG_CHUNKS = 200_000
#: What the compressed text and colour-profile chunks (zTXt, iTXt, iCCP) of one PNG may inflate to, together.
#: libpng inflates and keeps up to 1,000 of them, 8 MB each: 8 GB from an 8 MB file of 1,000 small zTXt chunks.
#: A camera's or editor's ICC profile and XMP packet take a few hundred KB. Deliberately stricter than libpng,
#: which skips one chunk past 8 MB and keeps the rest: such a file is refused whole.
_MAX_PNG_TEXT_BYTES = 8 << 20
#: Samples per pixel of each PNG colour type (grey, RGB, palette, grey + alpha, RGBA).
_PNG_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
#: More scans than this is not a photo: libjpeg's progressive modes write 6 (grey) or 10 (colour), searched scan
#: scripts a few dozen, and each scan makes the decoder pass over the whole image again (a 246 KB file of 4,000
#: empty scans held a 36-megapixel decode for 20 s: benchmarks/reliability.py).
_MAX_JPEG_SCANS = 100
#: More marker segments than this is not a photo either (a camera JPEG has a few dozen; they are walked one by one).
_MAX_JPEG_SEGMENTS = 10_000
#: The next marker after entropy-coded data: 0xFF followed by neither a stuffed zero, a restart marker nor fill.
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


class Header(NamedTuple):
    """What an encoded image claims: its format, size, and the largest buffer its decoder allocates
    besides the image itself (a TIFF strip or tile; 0 where that is bounded by the size)."""

    format: str
    width: int
    height: int
    buffer_bytes: int = 0


class MalformedImage(ValueError):
    """The header names a supported format, but its structure would make a decoder misread or over-allocate."""


_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"RIFF", "WebP"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
)


def signature(data: bytes) -> str | None:
    """The format named by the first bytes alone (so a truncated header still says what it was meant to be)."""
    for magic, name in _SIGNATURES:
        if data.startswith(magic) and (name != "WebP" or data[8:12] == b"WEBP"):
            return name
    return None


def sniff(data: bytes) -> Header | None:
    """The :class:`Header` of an encoded image.

    None when the format is not one of :data:`FORMATS` or its header is truncated; raises
    :class:`MalformedImage` (with the reason) when the header is there but cannot be trusted.
    """
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            return _png(data)
        if data[:3] == b"\xff\xd8\xff":
            return _jpeg(data)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp(data)
        if data[:2] == b"BM":
            return _bmp(data)
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff(data)
        if data[:6] in (b"GIF87a", b"GIF89a"):
            width, height = struct.unpack("<HH", data[6:10])
            return Header("GIF", width, height)
    except (struct.error, IndexError):
        return None
    return None


def _png(data: bytes) -> Header | None:
    """IHDR's size, after walking every chunk: each must fit in the file, animation frames in the image, the
    image data in what the image can need, and the inflated text and colour profiles in
    :data:`_MAX_PNG_TEXT_BYTES`."""
    if data[12:16] != b"IHDR":
        return None
    width, height, bit_depth, colour_type = struct.unpack(">IIBB", data[16:26])
    position, chunks, image_data, text = 8, 0, 0, _InflateBudget(_MAX_PNG_TEXT_BYTES)
    while position + 8 <= len(data):
        chunks += 1
        if chunks > _MAX_PNG_CHUNKS:
            raise MalformedImage(f"it has more than {_MAX_PNG_CHUNKS:,} PNG chunks")
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        available = len(data) - position - 12
        if length > available:
            raise MalformedImage(
                f"its PNG {kind.decode('latin-1')!r} chunk claims {length:,} bytes and its checksum, but only "
                f"{max(len(data) - position - 8, 0):,} bytes follow: the file is corrupt or truncated"
            )
        if kind == b"fcTL" and length >= 20:  # an APNG frame: its region must lie inside the image
            frame_w, frame_h, frame_x, frame_y = struct.unpack(">IIII", data[position + 12 : position + 28])
            if frame_x + frame_w > width or frame_y + frame_h > height:
                raise MalformedImage(
                    f"an animation frame of {frame_w}x{frame_h} pixels at ({frame_x}, {frame_y}) does not fit in the "
                    f"{width}x{height} image"
                )
        if kind == b"IDAT":
            image_data += length
        elif kind in (b"zTXt", b"iTXt", b"iCCP"):
            text.spend(_png_compressed_text(kind, data[position + 8 : position + 8 + length]))
        if kind == b"IEND":
            break
        position += 12 + length
    # Deflate never grows data by more than a few bytes per 16 KB, and libpng inflates every IDAT byte however few
    # rows the image has (9.8 MB inflating to 10 GB for 8x8 pixels: 20 s of one core).
    rows = height * (1 + (width * _PNG_SAMPLES.get(colour_type, 4) * bit_depth + 7) // 8)
    if image_data > 2 * rows + 65_536:
        raise MalformedImage(
            f"its image data is {image_data:,} compressed bytes, far more than a {width}x{height} image can hold "
            f"({rows:,} bytes uncompressed): the file is corrupt or crafted; re-save it with an image editor"
        )
    return Header("PNG", width, height)


class _InflateBudget:
    """Inflates zlib streams while their total output stays within ``limit`` bytes (MalformedImage beyond it)."""

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.limit = limit

    def spend(self, stream: bytes) -> None:
        if not stream:
            return
        try:
            inflated = zlib.decompressobj().decompress(stream, self.left + 1)
        except zlib.error:  # libpng skips a text chunk it cannot inflate, with a warning
            return
        self.left -= len(inflated)
        if self.left < 0:
            raise MalformedImage(
                f"its compressed text and colour-profile chunks (zTXt, iTXt, iCCP) inflate to more than "
                f"{self.limit >> 20} MB; re-save the image without its metadata"
            )


def _png_compressed_text(kind: bytes, body: bytes) -> bytes:
    """The zlib stream of a zTXt, iCCP or compressed iTXt chunk (b"" when it has none)."""
    name_end = body.find(b"\0")
    if name_end < 0:
        return b""
    if kind != b"iTXt":  # zTXt and iCCP: name, NUL, method byte, stream
        return body[name_end + 2 :]
    if body[name_end + 1 : name_end + 2] != b"\x01":  # iTXt: name, NUL, compressed flag, method, language, NUL,
        return b""  # translated keyword, NUL, text
    language_end = body.find(b"\0", name_end + 3)
    keyword_end = body.find(b"\0", language_end + 1) if language_end >= 0 else -1
    return body[keyword_end + 1 :] if keyword_end >= 0 else b""


def _jpeg(data: bytes) -> Header | None:
    """The first start-of-frame's size, after walking every marker to the end of the image: at most
    :data:`_MAX_JPEG_SCANS` scans and :data:`_MAX_JPEG_SEGMENTS` segments."""
    header: Header | None = None
    position, segments, scans = 2, 0, 0
    while position + 4 <= len(data):
        if data[position] != 0xFF or data[position + 1] == 0x00:
            if header is None:  # a JPEG is its segments: anything between them before the frame is corrupt
                return None
            # A scan's entropy-coded data, or bytes between segments (an escaped 0xFF among them): libjpeg
            # skips them, and so does this walk, or a scan hidden after them would go uncounted.
            found = _JPEG_MARKER.search(data, position + 1)
            if found is None:
                break
            position = found.start()
            continue
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            position += 2
            continue
        if marker == 0xD9:  # end of image
            break
        segments += 1
        if segments > _MAX_JPEG_SEGMENTS:
            raise MalformedImage(f"it has more than {_MAX_JPEG_SEGMENTS:,} JPEG marker segments")
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if header is None and 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width, components = struct.unpack(">HHB", data[position + 5 : position + 10])
            if not 1 <= components <= 4:
                raise MalformedImage(f"its JPEG frame has {components} colour components (1 to 4 are images)")
            header = Header("JPEG", width, height)
        if length < 2:  # a segment's length counts its own two bytes: libjpeg would read on from inside it
            return None
        position += 2 + length
        if marker == 0xDA:  # start of scan: its entropy-coded data, up to the next marker, is skipped above
            if header is None:
                return None
            scans += 1
            if scans > _MAX_JPEG_SCANS:
                raise MalformedImage(
                    f"its JPEG has more than {_MAX_JPEG_SCANS} scans (photos have at most a few dozen, and each "
                    "one makes the decoder pass over the whole image again)"
                )
    return header


def _webp(data: bytes) -> Header | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
        return Header("WebP", width, height)
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return Header("WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return Header("WebP", width & 0x3FFF, height & 0x3FFF)
    return None


# BMP info-header sizes: OS/2 1.x (12 bytes, 16-bit sizes); Windows and OS/2 2.x (16 to 124, 32-bit sizes).
_BMP_HEADERS = (12, 16, 40, 52, 56, 64, 108, 124)


def _bmp(data: bytes) -> Header | None:
    (header,) = struct.unpack("<I", data[14:18])
    if header not in _BMP_HEADERS:
        raise MalformedImage(f"its BMP header is {header} bytes long, which no BMP version uses")
    if header == 12:
        width, height = struct.unpack("<HH", data[18:22])
        return Header("BMP", width, height)
    width, height = struct.unpack("<ii", data[18:26])
    return Header("BMP", abs(width), abs(height))


# TIFF tags whose values decide what a decoder allocates: each must appear once, the rest are not read.
_TIFF_WIDTH, _TIFF_HEIGHT, _TIFF_BITS, _TIFF_SAMPLES = 256, 257, 258, 277
_TIFF_ROWS_PER_STRIP, _TIFF_TILE_WIDTH, _TIFF_TILE_HEIGHT = 278, 322, 323
_TIFF_SIZE_TAGS = {
    _TIFF_WIDTH,
    _TIFF_HEIGHT,
    _TIFF_BITS,
    _TIFF_SAMPLES,
    _TIFF_ROWS_PER_STRIP,
    _TIFF_TILE_WIDTH,
    _TIFF_TILE_HEIGHT,
}
# Field types: BYTE, SHORT, LONG, SSHORT, SLONG, LONG8 (byte size, struct code).
_TIFF_TYPES = {1: (1, "B"), 3: (2, "H"), 4: (4, "I"), 8: (2, "h"), 9: (4, "i"), 16: (8, "Q")}


def _tiff(data: bytes) -> Header | None:
    """The first image file directory's size, refusing directories a decoder would read differently."""
    order = "<" if data[:2] == b"II" else ">"
    (offset,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[offset : offset + 2])
    if offset + 2 + 12 * count > len(data):
        raise MalformedImage(f"its TIFF directory of {count} entries runs past the end of the file")
    values: dict[int, int] = {}
    for index in range(count):
        start = offset + 2 + 12 * index
        tag, kind, number = struct.unpack(order + "HHI", data[start : start + 8])
        if tag not in _TIFF_SIZE_TAGS:
            continue
        if tag in values:
            raise MalformedImage(f"its TIFF directory lists tag {tag} twice (decoders disagree on which one counts)")
        values[tag] = _tiff_value(data, order, kind, number, start + 8)
    if _TIFF_WIDTH not in values or _TIFF_HEIGHT not in values:
        return None
    width, height = values[_TIFF_WIDTH], values[_TIFF_HEIGHT]
    samples, bits = values.get(_TIFF_SAMPLES, 1), values.get(_TIFF_BITS, 1)
    if not 1 <= samples <= 4 or not 1 <= bits <= 64:
        raise MalformedImage(f"its TIFF claims {samples} samples of {bits} bits per pixel (images have 1-4, 1-64)")
    tile_width = values.get(_TIFF_TILE_WIDTH, width)
    tile_height = values.get(_TIFF_TILE_HEIGHT, min(values.get(_TIFF_ROWS_PER_STRIP, height), height))
    if tile_width * tile_height > 4 * max(width, 16) * max(height, 16):
        raise MalformedImage(f"its TIFF tiles ({tile_width}x{tile_height} pixels) are larger than the image")
    return Header("TIFF", width, height, tile_width * tile_height * samples * ((bits + 7) // 8))


def _tiff_value(data: bytes, order: str, kind: int, number: int, at: int) -> int:
    """The largest of an entry's integer values (inline, or at the offset it gives); 0 for other types."""
    if kind not in _TIFF_TYPES or number == 0:
        return 0
    size, code = _TIFF_TYPES[kind]
    if size * number > 4:
        (at,) = struct.unpack(order + "I", data[at : at + 4])
        number = min(number, 64)  # BitsPerSample has one value per sample: a few are enough
    raw = data[at : at + size * number]
    if len(raw) < size * number:
        raise MalformedImage("a TIFF size tag's values lie past the end of the file")
    return int(max(struct.unpack(order + code * number, raw)))
