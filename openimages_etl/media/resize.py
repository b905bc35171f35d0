"""The two ways to resize to a pixel budget (`--image-size 300k|200k`): `fast` (the default) and `tfds`.

Both give TFDS's output size (`tfds_size`) and a JPEG of quality 72, for every image, small ones too.
- fast: a colour JPEG stays in YCbCr from end to end. libjpeg-turbo (its TurboJPEG library, through PyTurboJPEG)
  decodes it to its Y, Cb and Cr planes as stored, at 1/2, 1/4 or 1/8 scale when that is still at least the
  output size (the DCT scaling drops the detail that would alias, and most of the work); OpenCV resizes each plane
  (INTER_LINEAR below 2x, INTER_AREA beyond) to the output's 4:2:0 sizes; libjpeg-turbo (simplejpeg) encodes the
  planes. No chroma upsampling, no colour conversion either way, and the chroma is resized at a quarter of the
  pixels: 30 % less time than through RGB at 0.79 MP. Images it does not take (PNG, grey or CMYK JPEGs, a flawed
  JPEG) go through Pillow in RGB, which also decides whether a flawed file is readable at all.
- tfds: TFDS's own steps (its Open Images builder): OpenCV decodes in full, `cv2.resize` scales both sides by
  the same factor (INTER_LINEAR, no antialiasing), OpenCV encodes. The pixels are TFDS's, bit for bit.
How they differ: fast maps the source's edges onto the output's edges, tfds scales by sqrt(target/pixels) on
both axes, so its right and bottom edges miss (or repeat) up to half an output pixel; tfds aliases fine
detail; fast is faster. benchmarks/bench_images.py measures both against a Lanczos resize of the full decode.

All these libraries release the GIL while they work (PyTurboJPEG calls through ctypes). OpenCV and TurboJPEG are
loaded on first use (~0.2 s at the CLI's start otherwise); OpenCV runs one thread per call, as the conversion batches
already keep every core busy.
"""

from __future__ import annotations

import functools
import logging
import math

import numpy as np
import simplejpeg
import turbojpeg

JPEG_QUALITY = 72  # TFDS re-encodes every image at this quality
Planes = list[np.ndarray]  # Y, Cb, Cr


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


class _StrictTurboJPEG(turbojpeg.TurboJPEG):
    """PyTurboJPEG only warns (warnings.warn) when libjpeg-turbo stopped on a warning (corrupt data, which it fills in
    with grey): here that is an error, whatever the thread's warning filters."""

    def _TurboJPEG__report_error(self, handle) -> None:  # the hook every call of PyTurboJPEG 1.x reports through
        raise OSError(self._TurboJPEG__get_error_string(handle))


@functools.cache
def _turbojpeg() -> turbojpeg.TurboJPEG | None:
    """libjpeg-turbo's TurboJPEG API, or None where its library is missing (then every image goes through Pillow)."""
    try:
        return _StrictTurboJPEG()
    except (OSError, RuntimeError) as exc:
        logging.getLogger(__name__).warning(
            "the fast resize runs at half speed: libjpeg-turbo's TurboJPEG library is missing (%s); on Debian or "
            "Ubuntu: apt-get install libturbojpeg0",
            exc,
        )
        return None


# The steps of the fast method, apart so that benchmarks/bench_images.py can time each one.
def decode_planes(data: bytes, width: int, height: int, size: tuple[int, int]) -> Planes | None:
    """The Y, Cb and Cr planes of a colour JPEG of width x height, decoded at 1/8, 1/4, 1/2 or full scale, the
    smallest still >= size (libjpeg-turbo's other n/8 scales have no SIMD code: slower than a full decode); None for a
    grey or CMYK JPEG, or one that libjpeg-turbo refuses or warns about."""
    turbo = _turbojpeg()
    if turbo is None:
        return None
    scale = next(s for s in (8, 4, 2, 1) if width // s >= size[0] and height // s >= size[1] or s == 1)
    # The fast IDCT only at full scale: libjpeg-turbo 2.1 garbles the chroma of a 1/2-scale decode with it (the scaled
    # IDCTs have one method anyway).
    flags = turbojpeg.TJFLAG_STOPONWARNING | (turbojpeg.TJFLAG_FASTDCT if scale == 1 else 0)
    try:
        planes = turbo.decode_to_yuv_planes(data, scaling_factor=(1, scale), flags=flags)
    except OSError:
        return None
    return planes if len(planes) == 3 else None


def plane_sizes(size: tuple[int, int]) -> list[tuple[int, int]]:
    """(width, height) of the Y, Cb and Cr planes of a 4:2:0 JPEG of `size`."""
    chroma = (-(-size[0] // 2), -(-size[1] // 2))
    return [size, chroma, chroma]


def resize_to(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """OpenCV's INTER_LINEAR (2x2 taps) below a 2x reduction, where it still reads every source pixel;
    INTER_AREA (the mean of the pixels each output pixel covers) beyond, where INTER_LINEAR would alias."""
    if pixels.shape[1::-1] == size:
        return pixels
    cv2 = _cv2()
    interpolation = cv2.INTER_AREA if pixels.shape[1] >= 2 * size[0] else cv2.INTER_LINEAR
    return cv2.resize(pixels, size, interpolation=interpolation)


def encode_planes(planes: Planes) -> bytes:
    """Y, Cb and Cr planes as a JPEG q72, 4:2:0, with the accurate DCT (what Pillow and OpenCV write by default)."""
    return simplejpeg.encode_jpeg_yuv_planes(*map(np.ascontiguousarray, planes), JPEG_QUALITY, fastdct=False)


def encode_jpeg(pixels: np.ndarray) -> bytes:
    """RGB pixels as a JPEG q72, 4:2:0, with the accurate DCT."""
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
