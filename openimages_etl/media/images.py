"""Image and mask conversion: images kept or resized (resize.py), masks normalised to the exported image size.

Every image is untrusted: its pixel count is checked from the header before any decoding (a
decompression bomb is an error, never a warning), and a truncated file is caught here, not in CVAT:
resized images are decoded in full, kept ones are checked for their end marker (JPEG) or chunks (PNG).

EXIF orientation: the export's pixel grid is the one a viewer shows, which is what CVAT shows
(it applies the EXIF orientation when it builds a task's frames) and what annotators saw. Kept
originals keep their bytes and their tag, and `images.meta` gets the displayed size; resized
images get the orientation applied to their pixels and no tag, so they look the same everywhere.
"""

from __future__ import annotations

import io
import os
import struct
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from openimages_etl.config import Limits, ResizeMethod
from openimages_etl.media.resize import (
    decode_planes,
    encode_jpeg,
    encode_planes,
    plane_sizes,
    resize_to,
    tfds_encode,
    tfds_resize,
    tfds_size,
)

EXIF_ORIENTATION = 0x0112
# What turns stored pixels (rows, columns, channels) upright for each EXIF orientation (the tag's definition):
# mirrored, turned by 180 degrees, ..., turned counter-clockwise by 90; 5-8 swap width and height.
UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
    8: np.rot90,
}
QUARTER_TURNS = {5, 6, 7, 8}
# Pillow's own check stays as a backstop (raised to the run's limit by each open, see _open); its warning (between 1x
# and 2x its limit) becomes an error.
warnings.simplefilter("error", Image.DecompressionBombWarning)
# By default Pillow hands each image's memory back to malloc, which returns it to the system, so every decode
# and resize faults fresh pages in (~2 ms of system time per image, 8 MP or 1 MP source, on 2026-11-24). Pillow
# keeps up to 24 freed blocks of 2 MB instead (48 MB at most) unless its own variables say otherwise.
if "PILLOW_BLOCK_SIZE" not in os.environ:
    Image.core.set_block_size(2 << 20)
if "PILLOW_BLOCKS_MAX" not in os.environ:
    Image.core.set_blocks_max(24)
DECODE_ERRORS = (
    UnidentifiedImageError,
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    RuntimeError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


class MediaError(ValueError):
    """An image or mask that cannot be used; the message says why."""


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Open from the header only, and refuse what is too big to decode."""
    # Pillow's check at no less than the limit passed in (only ever raised: other threads may open under it)
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, max_pixels)
    image = Image.open(io.BytesIO(data))
    _refuse_bomb(image.width, image.height, max_pixels)
    return image


def _refuse_bomb(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise MediaError(
            f"{width}x{height} pixels is more than the limit of {max_pixels} "
            "(OPENIMAGES_ETL_MAX_IMAGE_PIXELS): a decompression bomb?"
        )


def _to_rgb(image: Image.Image) -> Image.Image:
    """16-bit and 32-bit grey scaled to 8 bits (Pillow would clip them to white); alpha dropped; palette expanded."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = np.asarray(image).astype(np.uint32)
        image = Image.fromarray((wide >> 8 if wide.max() < 1 << 16 else wide >> 24).astype(np.uint8), "L")
    elif image.mode == "P":
        image = image.convert("RGBA")
    return image if image.mode == "RGB" else image.convert("RGB")


def convert_image(
    data: bytes, target_pixels: int | None, limits: Limits = Limits(), method: ResizeMethod = ResizeMethod.fast
) -> tuple[bytes, str | None, int, int]:
    """Returns (bytes, new extension or None, displayed height, displayed width). Originals are kept byte for
    byte (after a full decode to prove they are whole); resized ones are turned upright and re-encoded as
    JPEG q72, by `method` (see resize.py)."""
    max_pixels = limits.image_pixels
    fast = ResizeMethod(method) is ResizeMethod.fast
    plain = plain_jpeg_size(data)  # a whole JPEG without EXIF: the header gives what Pillow would, and it is upright
    if plain is not None:
        _refuse_bomb(*plain, max_pixels)
        if target_pixels is None:
            return data, None, plain[1], plain[0]
        if fast and (resized := _resize_planes(data, *plain, target_pixels)) is not None:
            return resized
    try:
        with _open(data, max_pixels) as image:
            width, height = image.size
            orientation = image.getexif().get(EXIF_ORIENTATION, 1)
            if target_pixels is None:
                _check_whole(image, data)
                return data, None, *((width, height) if orientation in QUARTER_TURNS else (height, width))
            if not fast:
                return _tfds(image, data, target_pixels)
            planes_not_tried = image.format == "JPEG" and plain is None
            if planes_not_tried and (resized := _resize_planes(data, width, height, target_pixels, orientation)):
                return resized
            size = tfds_size(width, height, target_pixels)
            pixels = _turned(resize_to(np.asarray(decode_near(image, size)), size), orientation)
            return encode_jpeg(pixels), ".jpg", *pixels.shape[:2]
    except MediaError:
        raise
    except UnidentifiedImageError as exc:  # its message names only the in-memory buffer (`<_io.BytesIO ...>`)
        raise MediaError("not a readable image (no image format Pillow knows)") from exc
    except DECODE_ERRORS as exc:
        raise MediaError(f"not a readable image ({type(exc).__name__}: {exc})") from exc


def _resize_planes(
    data: bytes, width: int, height: int, target_pixels: int, orientation: int = 1
) -> tuple[bytes, str, int, int] | None:
    """The fast method in YCbCr (resize.py); None for a JPEG that libjpeg-turbo does not take that way (grey, CMYK,
    flawed), which Pillow then decodes, or refuses."""
    size = tfds_size(width, height, target_pixels)
    planes = decode_planes(data, width, height, size)
    if planes is None:
        return None
    planes = [_turned(resize_to(plane, s), orientation) for plane, s in zip(planes, plane_sizes(size))]
    return encode_planes(planes), ".jpg", *planes[0].shape


def _turned(pixels: np.ndarray, orientation: int) -> np.ndarray:
    return UPRIGHT[orientation](pixels) if orientation in UPRIGHT else pixels


def decode_near(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The image's pixels in RGB, by Pillow; a JPEG is decoded at 1/2, 1/4 or 1/8 scale when that is still >= size."""
    image.draft("RGB", size)
    image.load()
    return _to_rgb(image)


def _tfds(image: Image.Image, data: bytes, target_pixels: int) -> tuple[bytes, str, int, int]:
    """OpenCV decodes what Pillow's header check let through; it would fill a truncated JPEG with grey, so that is
    refused first."""
    _check_whole(image, data)
    picture = tfds_resize(data, target_pixels)
    if picture is None:
        raise MediaError(f"not a readable image (OpenCV cannot decode this {image.format})")
    return tfds_encode(picture), ".jpg", *picture.shape[:2]


# Start-of-frame markers: every JPEG coding process but DHT (C4), JPG (C8) and DAC (CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def plain_jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a whole JPEG without EXIF data, read from its header ~5x faster than Image.open
    (it matters for millions of small originals); None for anything else, which Pillow then opens: a JPEG
    with EXIF may be rotated, and other formats need a decode to prove they are whole."""
    if not data.startswith(b"\xff\xd8") or data.rstrip(b"\0")[-2:] != b"\xff\xd9":
        return None
    at = 2
    while at + 9 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
        elif marker in _SOF:
            height, width = struct.unpack_from(">HH", data, at + 5)
            return (width, height) if width > 0 and height > 0 else None
        elif marker == 0xE1 and data[at + 4 : at + 8] == b"Exif":  # may hold an orientation: Pillow reads it
            return None
        else:
            at += 2 + struct.unpack_from(">H", data, at + 2)[0]
    return None


def _check_whole(image: Image.Image, data: bytes) -> None:
    """Catch truncated files without decoding their pixels (a full decode costs ~5 ms per photo):
    a JPEG must end with its end-of-image marker, a PNG's chunks must all be there with good CRCs."""
    if image.format == "JPEG":
        if data.rstrip(b"\0")[-2:] != b"\xff\xd9":
            raise MediaError("truncated JPEG (no end-of-image marker)")
    elif image.format == "PNG":
        with Image.open(io.BytesIO(data)) as fresh:  # verify() must come first on its own handle
            fresh.verify()
    else:
        image.load()


def convert_mask(data: bytes, size: tuple[int, int] | None, limits: Limits = Limits()) -> bytes:
    """Any PNG mask (non-zero = object; modes 1, L, P, I;16, RGB(A), alpha ignored) -> 8-bit 0/1 PNG at
    `size` (height, width), nearest-neighbour. A mask with no object pixel breaks CVAT's import, so it is an error."""
    max_pixels = limits.image_pixels
    try:
        with _open(data, max_pixels) as image:
            if image.format != "PNG":
                raise MediaError(f"mask is a {image.format} file, not a PNG")
            if image.mode == "P":
                image = image.convert("RGB")
            pixels = np.asarray(image)
    except MediaError:
        raise
    except DECODE_ERRORS as exc:
        raise MediaError(f"not a readable PNG mask ({type(exc).__name__}: {exc})") from exc
    if pixels.ndim == 3:
        pixels = pixels[..., : 3 if pixels.shape[2] >= 3 else 1].any(axis=2)
    binary = Image.fromarray((pixels != 0).astype(np.uint8), "L")
    if size and binary.size != (size[1], size[0]):
        binary = binary.resize((size[1], size[0]), Image.Resampling.NEAREST)
    if not binary.getbbox():
        raise MediaError("mask has no object pixel at the image's size")
    out = io.BytesIO()
    binary.save(out, "PNG")
    return out.getvalue()
