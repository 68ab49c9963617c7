"""A reward's image, checked before it is kept (decision 286): its type is what its bytes say
(PNG, JPEG or WebP, from their signatures), never the name or the type the upload claims, and its
size and dimensions are bounded. Pillow is not a dependency, so the few header fields needed are
read here: no pixel is decoded, the image is served back as uploaded under its sniffed type."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from coalition.errors import InvalidRequest

MAX_BYTES = 2 * 1024 * 1024
MAX_SIDE = 4096

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless...): C0-CF less DHT, JPG, DAC.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


@dataclass(frozen=True)
class CheckedImage:
    content_type: str
    width: int
    height: int
    data: bytes


class NotAnImage(InvalidRequest):
    code, title = "invalid_image", "Not an acceptable image"


def _png(data: bytes) -> tuple[int, int] | None:
    # The first chunk must be IHDR: width and height, 4 bytes each, big-endian.
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def _jpeg(data: bytes) -> tuple[int, int] | None:
    at = 2
    # Walk the segments to the first start-of-frame; each is FF, marker, 2-byte length.
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            at += 2
            continue
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        if length < 2:
            return None
        if marker in _SOF:
            if at + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return width, height
        if marker == 0xDA:  # start of scan before any frame header
            return None
        at += 2 + length
    return None


def _webp(data: bytes) -> tuple[int, int] | None:
    if len(data) < 30:
        return None
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None


def sniff(data: bytes) -> tuple[str, tuple[int, int] | None] | None:
    """The type the bytes are, and their dimensions if the header gives them; None: none of
    the three."""
    if data.startswith(PNG_SIGNATURE):
        return "image/png", _png(data)
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg", _jpeg(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", _webp(data)
    return None


def check(data: bytes) -> CheckedImage:
    """The upload as an image to keep, or `invalid_image` (422) saying why."""
    if not data:
        raise NotAnImage("the image is empty", errors={"image": ["empty"]})
    if len(data) > MAX_BYTES:
        raise NotAnImage(
            f"the image is larger than {MAX_BYTES // (1024 * 1024)} MB",
            errors={"image": ["too large"]},
        )
    found = sniff(data)
    if found is None:
        raise NotAnImage(
            "the file is not a PNG, JPEG or WebP image", errors={"image": ["unknown type"]}
        )
    content_type, size = found
    if size is None:
        raise NotAnImage(
            "the image's header is damaged: its size cannot be read",
            errors={"image": ["damaged"]},
        )
    width, height = size
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise NotAnImage(
            f"the image must be at most {MAX_SIDE} pixels a side, not {width} by {height}",
            errors={"image": ["too big a picture"]},
        )
    return CheckedImage(content_type, width, height, data)
