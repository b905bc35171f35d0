"""Pictures of a dataset: contact sheets (images upright, boxes, names, masks) and thumbnails of failing files."""

from __future__ import annotations

import functools
import io
import math
import re
import textwrap
import zlib
from dataclasses import dataclass

import numpy as np
import polars as pl
from fsspec.implementations.zip import ZipFileSystem
from PIL import Image, ImageColor, ImageDraw, ImageFont, UnidentifiedImageError

from openimages_etl.format.layout import Layout
from openimages_etl.schemas.tables import BoxSchema as Box
from openimages_etl.schemas.tables import SegmentationSchema as Segmentation
from openimages_etl.storage.locations import member_path, open_buffered
from openimages_etl.storage.workarea import read_stored

TILE = 240  # px, square cell an image is fitted into
GAP = 8
CAPTION = 18  # px under each tile
HEADER = 34  # px above the grid
COLUMNS = 6
LINE_WIDTH = 2
MASK_ALPHA = 0.45
PNG_LEVEL = 1  # zlib level: 1.4x faster than 3 (5x than the default 6) on a sheet of photos, 5 % larger than 3
BACKGROUND = (24, 24, 28)
TEXT = (235, 235, 235)
# Colour-blind-friendly, readable on photos: Okabe-Ito's seven, then five of matplotlib's tab10.
COLOURS = "#e69f00 #56b4e9 #009e73 #f0e442 #0072b2 #d55e00 #cc79a7 #ff7f0e #2ca02c #d62728 #9467bd #17becf"
PALETTE = [ImageColor.getrgb(colour) for colour in COLOURS.split()]
# Rotation (degrees counter-clockwise to show the image upright) -> PIL transpose and the box mapping.
TURNS = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}


def class_colour(label: str) -> tuple[int, int, int]:
    """The same colour for a class in every sheet and run."""
    return PALETTE[zlib.crc32(label.encode()) % len(PALETTE)]


@functools.cache  # the default font is decoded from base64 and parsed at each load
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def rotation_degrees(value: str | None) -> int:
    """`"90.0"` -> 90; empty, `nan` or anything else -> 0."""
    try:
        degrees = int(float(value)) % 360
    except (TypeError, ValueError):
        return 0
    return degrees if degrees in TURNS else 0


def upright_box(x0: float, x1: float, y0: float, y1: float, degrees: int) -> tuple[float, float, float, float]:
    """A normalised box of the stored image, in the frame of the image turned `degrees` counter-clockwise."""
    if degrees == 90:  # (x, y) -> (y, 1 - x)
        return y0, y1, 1 - x1, 1 - x0
    if degrees == 180:
        return 1 - x1, 1 - x0, 1 - y1, 1 - y0
    if degrees == 270:  # (x, y) -> (1 - y, x)
        return 1 - y1, 1 - y0, x0, x1
    return x0, x1, y0, y1


@dataclass(frozen=True)
class Visual:
    """One picture of a report: its file name in NAME.report/, a title for people, the PNG."""

    file: str
    title: str
    png: bytes


def file_part(value: str) -> str:
    """A subset name as a piece of a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", value).strip("-.") or "subset"


@dataclass(frozen=True)
class Tile:
    """One cell of a sheet: the picture fitted into TILE x TILE, and its caption."""

    picture: Image.Image
    caption: str
    caption_colour: tuple[int, int, int] = TEXT


def fit(image: Image.Image, upscale: bool = False) -> Image.Image:
    """Scale to fit TILE x TILE keeping the aspect ratio; up only when asked (masks: nearest, so pixels stay crisp)."""
    scale = min(TILE / image.width, TILE / image.height)
    scale = scale if upscale else min(scale, 1.0)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.NEAREST if upscale else Image.Resampling.BILINEAR)


def decode(data: bytes) -> Image.Image | None:
    """RGB at about tile size (JPEG decodes at a fraction of the size, much faster), None when not an image."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.draft("RGB", (TILE, TILE))
            return opened.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None


def annotated_tile(
    data: bytes,
    image_id: str,
    rotation: str | None,
    boxes: pl.DataFrame,
    masks: list[tuple[str, bytes]],
    names: dict[str, str],
) -> Tile:
    """The image upright and fitted, its masks tinted in, its boxes outlined and named."""
    degrees = rotation_degrees(rotation)
    image = decode(data)
    if image is None:
        return placeholder(image_id, "not a readable image")
    image = fit(image.transpose(TURNS[degrees]) if degrees else image)
    for label, png in masks:
        _tint(image, png, degrees, class_colour(label))
    draw = ImageDraw.Draw(image)
    small = font(11)
    for label, *coords in boxes.select(
        Box.label_name,
        *[pl.col(c).cast(pl.Float64, strict=False) for c in (Box.x_min, Box.x_max, Box.y_min, Box.y_max)],
    ).iter_rows():
        if None in coords:
            continue
        x0, x1, y0, y1 = upright_box(*coords, degrees)
        colour = class_colour(label)
        left, top = x0 * image.width, y0 * image.height
        right, bottom = max(left, x1 * image.width - 1), max(top, y1 * image.height - 1)
        draw.rectangle([left, top, right, bottom], outline=colour, width=LINE_WIDTH)
        name = names.get(label, label)
        text_box = draw.textbbox((0, 0), name, font=small)
        width, height = text_box[2] - text_box[0] + 4, text_box[3] - text_box[1] + 4
        tag_top = top - height if top >= height else top  # above the box, inside when at the image's top
        draw.rectangle([left, tag_top, left + width, tag_top + height], fill=colour)
        draw.text((left + 2, tag_top + 2 - text_box[1]), name, fill=(0, 0, 0), font=small)
    suffix = f"  (turned {degrees}°)" if degrees else ""
    return Tile(image, f"{image_id[:16]}{suffix}")


def _tint(image: Image.Image, png: bytes, degrees: int, colour: tuple[int, int, int]) -> None:
    """Blend `colour` into `image` where the mask (any size, non-zero = object) is set."""
    try:
        with Image.open(io.BytesIO(png)) as opened:
            mask = opened.convert("L")
    except (UnidentifiedImageError, OSError):
        return
    mask = (mask.transpose(TURNS[degrees]) if degrees else mask).resize(image.size, Image.Resampling.NEAREST)
    alpha = Image.fromarray((np.asarray(mask) > 0).astype(np.uint8) * round(255 * MASK_ALPHA), "L")
    image.paste(Image.new("RGB", image.size, colour), (0, 0), alpha)


def placeholder(name: str, message: str) -> Tile:
    picture = Image.new("RGB", (TILE, TILE), (60, 20, 20))
    ImageDraw.Draw(picture).multiline_text((10, TILE // 2 - 20), _wrap(message, 30), fill=TEXT, font=font(13))
    return Tile(picture, name[:34], (255, 120, 120))


def mask_tile(png: bytes, name: str, problem: str) -> Tile:
    """A mask as white on black, so an empty or speckled one is plain to see."""
    try:
        with Image.open(io.BytesIO(png)) as opened:
            pixels = np.asarray(opened.convert("L")) > 0
    except (UnidentifiedImageError, OSError) as exc:
        return placeholder(name, f"{problem}\n(unreadable: {type(exc).__name__})")
    picture = fit(Image.fromarray(pixels.astype(np.uint8) * 255, "L").convert("RGB"), upscale=True)
    draw = ImageDraw.Draw(picture)
    draw.rectangle([0, 0, picture.width - 1, picture.height - 1], outline=(120, 120, 120))  # the mask's extent
    draw.multiline_text((6, 6), _wrap(problem, 34), fill=(255, 90, 90), font=font(12))
    return Tile(picture, name[:34], (255, 120, 120))


def image_tile(data: bytes, name: str, problem: str) -> Tile:
    """A failing image with the check it failed written on it (or a placeholder saying it when it does not decode)."""
    image = decode(data)
    if image is None:
        return placeholder(name, problem)
    picture = fit(image)
    ImageDraw.Draw(picture).multiline_text((6, 6), _wrap(problem, 34), fill=(255, 90, 90), font=font(12))
    return Tile(picture, name[:34], (255, 120, 120))


def sheet(title: str, tiles: list[Tile]) -> Image.Image:
    """Tiles in a grid of COLUMNS, each picture centred in its cell, caption below, title on top."""
    columns = max(1, min(COLUMNS, len(tiles)))
    rows = max(1, math.ceil(len(tiles) / columns))
    cell_w, cell_h = TILE + GAP, TILE + CAPTION + GAP
    canvas = Image.new("RGB", (GAP + columns * cell_w, HEADER + rows * cell_h), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((GAP, 8), title, fill=TEXT, font=font(16))
    for index, tile in enumerate(tiles):
        x, y = tile_origin(index, columns)
        canvas.paste(tile.picture, (x + (TILE - tile.picture.width) // 2, y + (TILE - tile.picture.height) // 2))
        draw.text((x, y + TILE + 2), tile.caption, fill=tile.caption_colour, font=font(12))
    return canvas


def tile_origin(index: int, columns: int = COLUMNS) -> tuple[int, int]:
    """Top-left pixel of cell `index` in a sheet."""
    row, column = divmod(index, columns)
    return GAP + column * (TILE + GAP), HEADER + row * (TILE + CAPTION + GAP)


def contact_sheet(
    layout: Layout,
    subset: str,
    sample: pl.DataFrame,
    boxes: pl.DataFrame,
    masks: pl.DataFrame,
    names: dict[str, str],
    listed: int,
) -> Image.Image:
    """The sampled images of `subset` (rows of stats.sample_images) with their boxes and masks."""
    fs, base = layout.root.open_fs()
    mask_paths = dict(
        read_stored(layout.mask_files, ["name", "path"])
        .filter(pl.col("name").is_in(masks.get_column(Segmentation.mask_path).implode()))
        .iter_rows()
    )
    tiles = []
    for image_id, rotation, path in (
        sample.filter(pl.col("subset") == subset).select("ImageID", "rotation", "path").iter_rows()
    ):
        image_masks = [
            (label, fs.cat_file(member_path(base, mask_paths[name])))
            for name, label in masks.filter(pl.col(Segmentation.image_id) == image_id)
            .select(Segmentation.mask_path, Segmentation.label_name)
            .iter_rows()
            if name in mask_paths
        ]
        tiles.append(
            annotated_tile(
                fs.cat_file(member_path(base, path)),
                image_id,
                rotation,
                boxes.filter(pl.col(Box.image_id) == image_id),
                image_masks,
                names,
            )
        )
    shown = (
        f"{len(tiles)} of {listed} images, evenly spaced by ImageID" if len(tiles) < listed else f"all {listed} images"
    )
    return sheet(f"{subset}: {shown} (shown upright; boxes and masks as exported)", tiles)


def failure_sheet(layout: Layout, errors: list[dict], limit: int = 24) -> Image.Image | None:
    """Thumbnails of the image and mask files behind the first failures, or None when no failure is about a file."""
    fs, base = layout.root.open_fs()
    images = set(
        read_stored(layout.image_files, ["path"])
        .filter(pl.col("path").is_in([e["file"] for e in errors]))
        .get_column("path")
    )
    masks = {
        name: (shard, path)
        for name, shard, path in read_stored(layout.mask_files)
        .filter(pl.col("name").is_in([str(e["value"]) for e in errors if e["column"] == Segmentation.mask_path]))
        .iter_rows()
    }
    tiles = []
    for error in errors:
        if len(tiles) == limit:
            break
        if error["file"] in images:
            tiles.append(
                image_tile(
                    fs.cat_file(member_path(base, error["file"])), str(error["value"] or error["file"]), error["check"]
                )
            )
        elif error["column"] == Segmentation.mask_path and error["value"] in masks:
            tiles.append(mask_tile(_read_mask(fs, base, *masks[error["value"]]), error["value"], error["check"]))
    return sheet(f"Files that failed ({len(tiles)} shown)", tiles) if tiles else None


def _read_mask(fs, base: str, shard: str | None, path: str) -> bytes:
    if shard is None:
        return fs.cat_file(member_path(base, path))
    with open_buffered(fs, member_path(base, shard)) as raw:
        return ZipFileSystem(fo=raw, skip_instance_cache=True).cat_file(path)


def to_png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=PNG_LEVEL)
    return out.getvalue()


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(str(text), width)[:6])
