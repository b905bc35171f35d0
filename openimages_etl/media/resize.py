"""The two ways to resize to a pixel budget (`--image-size 300k|200k`): `fast` (the default) and `tfds`.

Both give TFDS's output size (`tfds_size`) and a JPEG of quality 72, for every image, small ones too.
- fast: libjpeg-turbo (simplejpeg) decodes a JPEG at 1/2, 1/4 or 1/8 scale when that is still at least the
  output size (the DCT scaling drops the detail that would alias, and most of the work), with its fast IDCT and
  chroma upsampling (the resize averages away what they lose); OpenCV resizes what is left (INTER_LINEAR below
  2x, INTER_AREA beyond); libjpeg-turbo encodes. Images it does not decode (PNG, CMYK, a flawed JPEG) go through
  Pillow, which also decides whether a flawed file is readable at all.
- tfds: TFDS's own steps (its Open Images builder): OpenCV decodes in full, `cv2.resize` scales both sides by
  the same factor (INTER_LINEAR, no antialiasing), OpenCV encodes. The pixels are TFDS's, bit for bit.
How they differ: fast maps the source's edges onto the output's edges, tfds scales by sqrt(target/pixels) on
both axes, so its right and bottom edges miss (or repeat) up to half an output pixel; tfds aliases fine
detail; fast is faster. benchmarks/bench_images.py measures both against a Lanczos resize of the full decode.

All three libraries release the GIL while they work. OpenCV is imported on first use (~0.2 s at the CLI's
start otherwise) and runs one thread per call, as the conversion batches already keep every core busy.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import simplejpeg

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


# The steps of the fast method, apart so that benchmarks/bench_images.py can time each one.
def decode_scaled(data: bytes, width: int, height: int, size: tuple[int, int]) -> np.ndarray | None:
    """RGB pixels of a JPEG of width x height decoded at 1/8, 1/4, 1/2 or full scale, the smallest still >= size
    (libjpeg-turbo's other n/8 scales have no SIMD code: slower than a full decode); None if libjpeg-turbo
    refuses the file or warns about it."""
    scale = next(s for s in (8, 4, 2, 1) if width // s >= size[0] and height // s >= size[1] or s == 1)
    try:
        return simplejpeg.decode_jpeg(
            data, "RGB", fastdct=True, fastupsample=True, min_width=-(-width // scale), min_height=-(-height // scale)
        )
    except ValueError:
        return None


def resize_to(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """OpenCV's INTER_LINEAR (2x2 taps) below a 2x reduction, where it still reads every source pixel;
    INTER_AREA (the mean of the pixels each output pixel covers) beyond, where INTER_LINEAR would alias."""
    if pixels.shape[1::-1] == size:
        return pixels
    cv2 = _cv2()
    interpolation = cv2.INTER_AREA if pixels.shape[1] >= 2 * size[0] else cv2.INTER_LINEAR
    return cv2.resize(pixels, size, interpolation=interpolation)


def encode_jpeg(pixels: np.ndarray) -> bytes:
    """RGB pixels as a JPEG q72, 4:2:0, with the accurate DCT: what Pillow and OpenCV write by default."""
    return simplejpeg.encode_jpeg(np.ascontiguousarray(pixels), JPEG_QUALITY, "RGB", "420", fastdct=False)


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
