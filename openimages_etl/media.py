"""Image and mask conversion: TFDS-style resizing, masks normalised to the exported image size."""
from __future__ import annotations

import io
import math

import struct

import numpy as np
from PIL import Image, UnidentifiedImageError

Image.MAX_IMAGE_PIXELS = 200_000_000  # well above any real photo; larger is a decompression bomb
JPEG_QUALITY = 72  # TFDS re-encodes every resized image at this quality
UNREADABLE = (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError)  # what Pillow raises on bad bytes


class MediaError(ValueError):
    """An image or mask that cannot be used; the message says why."""


def tfds_size(width: int, height: int, target_pixels: int | None) -> tuple[int, int]:
    """The TFDS rule: scale both sides by sqrt(target / (h*w)) when larger than target; never upscale."""
    if not target_pixels or width * height <= target_pixels:
        return width, height
    factor = math.sqrt(target_pixels / (width * height))
    return max(1, round(width * factor)), max(1, round(height * factor))


def convert_image(data: bytes, target_pixels: int | None) -> tuple[bytes, str | None, int, int]:
    """Returns (bytes, new extension or None, height, width). Originals are kept byte for byte;
    resized ones are decoded at reduced DCT scale when possible and re-encoded as JPEG q72."""
    if target_pixels is None:
        width, height = header_size(data)
        return data, None, height, width
    try:
        with Image.open(io.BytesIO(data)) as image:
            size = tfds_size(*image.size, target_pixels)
            image.draft("RGB", size)  # JPEG only: decode at 1/2, 1/4 or 1/8 scale when still >= size
            picture = image.convert("RGB")
            if picture.size != size:
                picture = picture.resize(size, Image.Resampling.BILINEAR)
            out = io.BytesIO()
            picture.save(out, "JPEG", quality=JPEG_QUALITY)
            return out.getvalue(), ".jpg", size[1], size[0]
    except UNREADABLE as exc:
        raise MediaError(f"not a readable image ({exc})") from exc


# Start-of-frame markers: every JPEG coding process but DHT (C4), JPG (C8) and DAC (CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def header_size(data: bytes) -> tuple[int, int]:
    """(width, height) stored in the header, as Pillow reports it (no EXIF rotation). JPEG and PNG
    headers are read here, ~5x faster than Image.open (it matters for millions of small images kept
    as they are); Pillow reads the other formats and whatever these two readers do not recognise."""
    width, height = _jpeg_size(data) or _png_size(data) or (0, 0)
    if width <= 0 or height <= 0:
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
        except UNREADABLE as exc:
            raise MediaError(f"not a readable image ({exc})") from exc
    if width * height > 2 * Image.MAX_IMAGE_PIXELS:  # Pillow's own limit for a decompression bomb
        raise MediaError(f"{width}x{height} pixels: a decompression bomb")
    return width, height


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Walk the JPEG segments to the first start-of-frame; None if the bytes are not that."""
    if not data.startswith(b"\xff\xd8"):
        return None
    at = 2
    while at + 9 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
        elif marker in _SOF:
            height, width = struct.unpack_from(">HH", data, at + 5)
            return width, height
        else:
            at += 2 + struct.unpack_from(">H", data, at + 2)[0]
    return None


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        return struct.unpack_from(">II", data, 16)
    return None


def convert_mask(data: bytes, size: tuple[int, int] | None) -> bytes:
    """Any PNG mask (non-zero = object) -> 8-bit 0/1 PNG at `size` (height, width), nearest-neighbour.
    A mask with no object pixel breaks CVAT's import, so it is an error here."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            pixels = np.asarray(image)
    except UNREADABLE as exc:
        raise MediaError(f"not a readable PNG mask ({exc})") from exc
    if pixels.ndim == 3:
        pixels = pixels.any(axis=2)
    binary = Image.fromarray((pixels != 0).astype(np.uint8), "L")
    if size and binary.size != (size[1], size[0]):
        binary = binary.resize((size[1], size[0]), Image.Resampling.NEAREST)
    if not binary.getbbox():
        raise MediaError("mask has no object pixel at the image's size")
    out = io.BytesIO()
    binary.save(out, "PNG")
    return out.getvalue()
