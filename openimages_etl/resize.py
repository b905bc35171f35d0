"""The two ways to resize to a pixel budget (`--image-size 300k|200k`): `fast` (the default) and `tfds`.

Both give TFDS's output size (`tfds_size`) and a JPEG of quality 72, for every image, small ones too.
- fast: Pillow decodes a JPEG at 1/2, 1/4 or 1/8 scale when that is still at least the output size (libjpeg's
  DCT scaling drops the fine detail that would alias, and skips most of the decode work), OpenCV resizes
  what is left (INTER_LINEAR for less than 2x, INTER_AREA beyond), Pillow encodes.
  Pillow's full decode takes half the time of OpenCV's (3.5 vs 8.0 ms at 1024x768, 2026-11-30).
- tfds: TFDS's own steps (its Open Images builder): OpenCV decodes in full, `cv2.resize` scales both sides by
  the same factor (INTER_LINEAR, no antialiasing), OpenCV encodes. The pixels are TFDS's, bit for bit.
How they differ: fast maps the source's edges onto the output's edges, tfds scales by sqrt(target/pixels)
on both axes, so its right and bottom edges miss (or repeat) up to half an output pixel; tfds aliases fine
detail; fast is 1.4-3x faster. benchmarks/bench_images.py measures both against a Lanczos resize.

OpenCV's functions release the GIL; it is imported on first use (about 0.2 s) and runs one thread per call,
as the conversion batches already keep every core busy.
"""
from __future__ import annotations

import functools
import math
import os
import tempfile
from typing import IO

import numpy as np
from PIL import Image

JPEG_QUALITY = 72  # TFDS re-encodes every image at this quality


def tfds_size(width: int, height: int, target_pixels: int | None) -> tuple[int, int]:
    """The TFDS rule: scale both sides by sqrt(target / (h*w)) when larger than target; never upscale."""
    if not target_pixels or width * height <= target_pixels:
        return width, height
    factor = math.sqrt(target_pixels / (width * height))
    return max(1, round(width * factor)), max(1, round(height * factor))


@functools.cache
def _cv2():
    import cv2

    cv2.setNumThreads(1)  # one image per thread: the batches spread over the cores
    return cv2


# The fast method's steps after media.decode_near, apart so that benchmarks/bench_images.py can time each one.
def resize_to(picture: Image.Image, size: tuple[int, int]) -> Image.Image:
    """OpenCV's INTER_LINEAR (2x2 taps) below a 2x reduction, where it still reads every source pixel;
    INTER_AREA (the mean of the pixels each output pixel covers) beyond, where INTER_LINEAR would alias."""
    if picture.size == size:
        return picture
    cv2 = _cv2()
    interpolation = cv2.INTER_AREA if picture.width >= 2 * size[0] else cv2.INTER_LINEAR
    return Image.fromarray(cv2.resize(np.asarray(picture), size, interpolation=interpolation))


def encode_jpeg(picture: Image.Image) -> bytes:
    """JPEG q72. Pillow holds the GIL while it encodes into a BytesIO but not into a file descriptor:
    an anonymous in-memory file lets other threads run during the encode."""
    with _scratch_file() as out:
        picture.save(out, "JPEG", quality=JPEG_QUALITY)
        out.seek(0)
        return out.read()


def _scratch_file() -> IO[bytes]:
    if hasattr(os, "memfd_create"):  # Linux: no file system involved
        return open(os.memfd_create("jpeg"), "w+b")
    return tempfile.TemporaryFile()


def tfds_resize(data: bytes, target_pixels: int) -> np.ndarray | None:
    """TFDS's decode and resize, in BGR and upright (OpenCV applies the EXIF orientation); None when OpenCV
    cannot decode the bytes. 16-bit images are scaled to 8 bits, where TFDS's encode would clip them to white."""
    cv2 = _cv2()
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags=cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)  # TFDS's flags=3
    if image is None:
        return None
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    height, width = image.shape[:2]
    if height * width > target_pixels:
        factor = np.sqrt(target_pixels / (height * width))
        image = cv2.resize(image, dsize=None, fx=factor, fy=factor)
    return image


def tfds_encode(image: np.ndarray) -> bytes:
    """TFDS's encode: OpenCV's JPEG writer at quality 72."""
    cv2 = _cv2()
    return cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), JPEG_QUALITY])[1].tobytes()
