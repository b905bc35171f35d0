"""Image and mask conversion on real JPEG/PNG bytes."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from openimages_etl.config import ResizeMethod
from openimages_etl.media.images import MediaError, convert_image, convert_mask
from openimages_etl.media.resize import tfds_size

from .helpers import noise_jpeg


@pytest.mark.parametrize(
    ("width", "height", "target", "expected"),
    [
        (640, 480, 300_000, (632, 474)),  # 307,200 px: scaled by sqrt(300000/307200) = 0.988
        (500, 375, 300_000, (500, 375)),  # smaller: never upscaled
        (1024, 768, 200_000, (516, 387)),
        (4000, 2000, 300_000, (775, 387)),
        (640, 480, None, (640, 480)),
    ],
)
def test_tfds_size(width, height, target, expected):
    assert tfds_size(width, height, target) == expected


def test_original_keeps_the_bytes():
    data = noise_jpeg(64, 48)
    assert convert_image(data, None) == (data, None, 48, 64)


@pytest.mark.parametrize("method", list(ResizeMethod))
@pytest.mark.parametrize("size", [(1024, 768), (320, 240), (3264, 2448), (1001, 999)])
def test_resized_images_are_jpeg_q72_at_the_tfds_size(size, method):
    out, extension, height, width = convert_image(noise_jpeg(*size), 300_000, method=method)
    assert extension == ".jpg" and (width, height) == tfds_size(*size, 300_000)
    with Image.open(io.BytesIO(out)) as image:
        assert image.format == "JPEG" and image.size == (width, height)
        # libjpeg's quality-72 luminance table starts with round(16 * (200 - 2*72) / 100) = 9
        assert image.quantization[0][0] == 9


def _tfds_method(data: bytes, target: int) -> np.ndarray:
    """What TFDS's Open Images builder does to an image (_resize_image_if_necessary), decoded again."""
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags=3)
    height, width, _ = image.shape
    if height * width > target:
        factor = np.sqrt(target / (height * width))
        image = cv2.resize(image, dsize=None, fx=factor, fy=factor)
    return cv2.imdecode(cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), 72])[1], flags=3)


@pytest.mark.parametrize(
    ("size", "target"), [((1024, 768), 300_000), ((3264, 2448), 300_000), ((1001, 999), 200_000), ((320, 240), 300_000)]
)
def test_the_tfds_method_gives_tfds_pixels(size, target):
    data = noise_jpeg(*size)
    out, _, height, width = convert_image(data, target, method=ResizeMethod.tfds)
    expected = _tfds_method(data, target)
    assert np.array_equal(cv2.imdecode(np.frombuffer(out, np.uint8), flags=3), expected)
    assert (height, width) == expected.shape[:2]


def test_the_fast_method_is_closer_than_tfds_to_a_lanczos_resize():
    ys, xs = np.mgrid[0:768, 0:1024]
    waves = (127 + 120 * np.sin(xs * ys / 3000.0)).astype(np.uint8)  # fine detail that aliases when sampled
    buffer = io.BytesIO()
    Image.fromarray(np.dstack([waves] * 3)).save(buffer, "JPEG", quality=95)
    fast, _, height, width = convert_image(buffer.getvalue(), 300_000)
    with Image.open(buffer) as source:
        reference = np.asarray(source.convert("RGB").resize((width, height), Image.Resampling.LANCZOS), np.float64)

    def error(pixels: np.ndarray) -> float:
        return float(np.mean((pixels.astype(np.float64) - reference) ** 2))

    tfds = _tfds_method(buffer.getvalue(), 300_000)[..., ::-1]
    assert error(np.asarray(Image.open(io.BytesIO(fast)).convert("RGB"))) < error(tfds)


@pytest.mark.parametrize("method", list(ResizeMethod))
@pytest.mark.parametrize("orientation", range(1, 9))
def test_resized_images_are_turned_upright_as_a_viewer_shows_them(orientation, method):
    pixels = np.zeros((480, 640, 3), np.uint8)
    pixels[:240, :320] = (250, 20, 20)  # a red corner and a green band tell every turn and mirror apart
    pixels[240:, :, 1] = 200
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    out, _, height, width = convert_image(buffer.getvalue(), 200_000, method=method)
    with Image.open(buffer) as source:
        expected = np.asarray(ImageOps.exif_transpose(source).convert("RGB").resize((width, height)), np.float64)
    assert np.abs(np.asarray(Image.open(io.BytesIO(out)).convert("RGB"), np.float64) - expected).mean() < 4


def test_a_jpeg_libjpeg_turbo_warns_about_goes_through_pillow():
    data = noise_jpeg(1024, 768)
    flawed = data[:-2] + b"\x00" * 7 + data[-2:]  # stray bytes before the end marker: a warning, not an error
    out, _, height, width = convert_image(flawed, 300_000)
    assert (width, height) == tfds_size(1024, 768, 300_000) and Image.open(io.BytesIO(out)).size == (width, height)


def test_png_and_grey_sources_become_rgbnoise_jpeg():
    buffer = io.BytesIO()
    Image.fromarray(np.full((900, 700), 128, np.uint8), "L").save(buffer, "PNG")
    out, extension, height, width = convert_image(buffer.getvalue(), 200_000)
    with Image.open(io.BytesIO(out)) as image:
        assert image.mode == "RGB" and image.size == (width, height) and width * height <= 200_000


def test_not_an_image_is_a_media_error():
    with pytest.raises(MediaError, match="not a readable image"):
        convert_image(b"this is text", None)


@pytest.mark.parametrize("mode", ["1", "L", "P"])
def test_masks_become_8bit_zero_one_at_the_image_size(mode):
    pixels = np.zeros((24, 32), np.uint8)
    pixels[5:15, 10:20] = 255
    buffer = io.BytesIO()
    Image.fromarray(pixels, "L").convert(mode).save(buffer, "PNG")
    with Image.open(io.BytesIO(convert_mask(buffer.getvalue(), (48, 64)))) as mask:
        array = np.asarray(mask)
        assert mask.mode == "L" and array.shape == (48, 64)
        assert set(np.unique(array)) == {0, 1} and array.sum() == 20 * 20


def test_empty_mask_is_a_media_error():
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((4, 4), np.uint8), "L").save(buffer, "PNG")
    with pytest.raises(MediaError, match="no object pixel"):
        convert_mask(buffer.getvalue(), (8, 8))
