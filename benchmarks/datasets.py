"""Synthetic Open Images datasets for the benchmarks, generated vectorised and cached in benchmarks/.cache."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image

from openimages_etl.format.sample import BOX_COLUMNS, IMAGE_COLUMNS

CACHE = Path(__file__).resolve().parent / ".cache"
LABEL_COUNT = 600  # boxable classes in V4-V7
SOURCES = (["xclick", "activemil", "freeform"], [0.62, 0.37, 0.01])
# P(flag == 1) per box flag; about 1 % of the rows say -1 (unknown), as activemil boxes sometimes do.
FLAG_ONES = {"IsOccluded": 0.47, "IsTruncated": 0.27, "IsGroupOf": 0.06, "IsDepiction": 0.05, "IsInside": 0.01}


def cached(name: str, build) -> Path:
    """`CACHE/name`, built once by `build(tmp_folder)` and moved into place whole."""
    target = CACHE / name
    if target.exists():
        return target
    partial = CACHE / f".{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    build(partial)
    partial.rename(target)
    return target


def hex_ids(rng: np.random.Generator, count: int, digits: int = 16) -> np.ndarray:
    """`count` distinct sorted lowercase hex strings (the official ImageID form), without a Python loop."""
    values = np.unique(rng.integers(0, 2**63, size=int(count * 1.01) + 16, dtype=np.int64))[:count]
    rng.shuffle(values)
    values = np.sort(values[:count])
    nibbles = (values[:, None] >> (4 * np.arange(digits - 1, -1, -1))) & 0xF
    return np.frombuffer(np.frombuffer(b"0123456789abcdef", np.uint8)[nibbles].tobytes(), f"S{digits}").astype(
        f"U{digits}"
    )


def label_names(rng: np.random.Generator) -> list[str]:
    """600 MID-like names (`/m/0` + 2-6 base-32 characters), distinct."""
    alphabet = np.array(list("0123456789bcdfghjklmnpqrstvwxyz_"))
    names: set[str] = set()
    while len(names) < LABEL_COUNT:
        names.add("/m/0" + "".join(rng.choice(alphabet, rng.integers(2, 7))))
    return sorted(names)


def boxes(rng: np.random.Generator, image_ids: np.ndarray, per_image: np.ndarray, labels: list[str]) -> pl.DataFrame:
    """Box rows in the official V4 columns: Zipf-like label frequencies, coordinates with 6 decimals."""
    rows = int(per_image.sum())
    rank = np.minimum(rng.zipf(1.3, rows), len(labels)) - 1
    x_min = rng.beta(1.2, 3.0, rows)
    y_min = rng.beta(1.2, 3.0, rows)
    x_max = np.minimum(1.0, x_min + rng.beta(1.5, 3.0, rows) * (1 - x_min) + 1e-6)
    y_max = np.minimum(1.0, y_min + rng.beta(1.5, 3.0, rows) * (1 - y_min) + 1e-6)
    flags = {
        name: np.where(rng.random(rows) < 0.01, -1, (rng.random(rows) < p).astype(np.int8))
        for name, p in FLAG_ONES.items()
    }
    return pl.DataFrame(
        {
            "ImageID": np.repeat(image_ids, per_image),
            "Source": rng.choice(SOURCES[0], rows, p=SOURCES[1]),
            "LabelName": np.asarray(labels)[rank],
            "Confidence": np.ones(rows, np.int8),
            "XMin": x_min,
            "XMax": x_max,
            "YMin": y_min,
            "YMax": y_max,
            **flags,
        }
    ).select(BOX_COLUMNS)


def image_list(rng: np.random.Generator, image_ids: np.ndarray, subset: str, full: bool) -> pl.DataFrame:
    """The image list; `full` fills every column the way the official file does (Flickr URLs, authors, MD5s)."""
    count = len(image_ids)
    frame = pl.DataFrame({"ImageID": image_ids, "Subset": np.full(count, subset)})
    if not full:
        return frame.with_columns([pl.lit(None, pl.String).alias(c) for c in IMAGE_COLUMNS[2:]]).select(IMAGE_COLUMNS)
    photo = pl.Series(rng.integers(10**9, 10**10, count)).cast(pl.String)
    farm = pl.Series(rng.integers(1, 10, count)).cast(pl.String)
    secret = pl.Series(hex_ids(rng, count, 10))
    owner = pl.Series(rng.integers(10**7, 10**8, count)).cast(pl.String)
    md5 = pl.Series(hex_ids(rng, count, 16)).str.to_uppercase() + "Q54NBEFDwBqA=="
    return frame.with_columns(
        OriginalURL=pl.format(
            "https://farm{}.staticflickr.com/{}/{}_{}_o.jpg", farm, photo.str.slice(0, 4), photo, secret
        ),
        OriginalLandingURL=pl.format("https://www.flickr.com/photos/{}@N00/{}", owner, photo),
        License=pl.lit("https://creativecommons.org/licenses/by/2.0/"),
        AuthorProfileURL=pl.format("https://www.flickr.com/people/{}@N00/", owner),
        Author=pl.format("Author {}", owner.str.slice(0, 5)),
        Title=pl.format("IMG_{}", photo.str.slice(4, 4)),
        OriginalSize=pl.Series(rng.integers(100_000, 8_000_000, count)),
        OriginalMD5=md5,
        Thumbnail300KURL=pl.format(
            "https://c{}.staticflickr.com/{}/{}_{}_z.jpg", farm, photo.str.slice(0, 4), photo, secret
        ),
        Rotation=pl.Series(
            rng.choice(["0.0", "", "90.0", "180.0", "270.0"], count, p=[0.6, 0.37, 0.02, 0.005, 0.005])
        ).replace("", None),
    ).select(IMAGE_COLUMNS)


def write_csv(frame: pl.DataFrame, path: Path, header: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_csv(path, include_header=header, float_precision=6)


def official_annotations(rows: int, images: int, seed: int = 4) -> Path:
    """Google's V4 train files at full size: image list (all 12 columns), bbox CSV with `rows` rows, classes."""

    def build(folder: Path) -> None:
        rng = np.random.default_rng(seed)
        ids = hex_ids(rng, images)
        per_image = rng.multinomial(rows - images, np.full(images, 1 / images)) + 1  # every image has a box
        labels = label_names(rng)
        write_csv(
            pl.DataFrame({"LabelName": labels, "DisplayName": [f"Class {i}" for i in range(len(labels))]}),
            folder / "class-descriptions-boxable.csv",
            header=False,
        )
        write_csv(image_list(rng, ids, "train", full=True), folder / "train-images-boxable-with-rotation.csv")
        write_csv(boxes(rng, ids, per_image, labels), folder / "train-annotations-bbox.csv")

    return cached(f"official-{rows}-{images}", build)


def tiny_jpegs(rng: np.random.Generator, count: int, size: tuple[int, int]) -> list[bytes]:
    """`count` distinct small photo-like JPEGs of `size` (width, height)."""
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width]
    blobs = []
    for _ in range(count):
        base = rng.uniform(40, 200, 3)
        pixels = np.stack([base[c] + 40 * np.sin(xs / (9 + 4 * c)) + 30 * np.cos(ys / 13) for c in range(3)], axis=-1)
        pixels += rng.normal(0, 8, pixels.shape)
        out = io.BytesIO()
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").save(out, "JPEG", quality=80)
        blobs.append(out.getvalue())
    return blobs


def train_annotations(
    folder: Path, rng: np.random.Generator, images: int, boxes_per_image: int, display: str = "{label}"
) -> np.ndarray:
    """The annotations of a CVAT-layout `folder` with one subset, train: class descriptions (DisplayName from
    `display`, given the class's `i` and `label`), `images` listed, `boxes_per_image` boxes each; their ImageIDs."""
    ids = hex_ids(rng, images)
    labels = label_names(rng)
    notes = folder / "annotations"
    names = [display.format(i=i, label=label) for i, label in enumerate(labels)]
    write_csv(pl.DataFrame({"LabelName": labels, "DisplayName": names}), notes / "class-descriptions.csv", header=False)
    write_csv(image_list(rng, ids, "train", full=False), notes / "train-images-with-rotation.csv")
    write_csv(boxes(rng, ids, np.full(images, boxes_per_image), labels), notes / "train-annotations-bbox.csv")
    return ids


def annotation_heavy(images: int, boxes_per_image: int, seed: int = 1) -> Path:
    """A CVAT/Datumaro-layout folder: `images` small JPEGs in train, `boxes_per_image` boxes each, images.meta."""

    def build(folder: Path) -> None:
        rng = np.random.default_rng(seed)
        ids = train_annotations(folder, rng, images, boxes_per_image, "Class {i}")
        notes = folder / "annotations"
        sizes = [(160, 120), (120, 160), (144, 108)]
        blobs = tiny_jpegs(rng, 60, sizes[0]) + tiny_jpegs(rng, 60, sizes[1]) + tiny_jpegs(rng, 60, sizes[2])
        choice = rng.integers(0, len(blobs), images)
        (folder / "images" / "train").mkdir(parents=True)
        for image_id, pick in zip(ids, choice):
            (folder / "images" / "train" / f"{image_id}.jpg").write_bytes(blobs[pick])
        width, height = np.array([sizes[p // 60] for p in choice]).T
        meta = pl.DataFrame({"line": ids}).select(pl.format("{} {} {}", "line", pl.Series(height), pl.Series(width)))
        (notes / "images.meta").write_text("# image_id height width\n" + "\n".join(meta.to_series()) + "\n")

    return cached(f"heavy-{images}-{boxes_per_image}", build)


def photo(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A photo-like picture: smooth colour fields, shapes with sharp edges, fine texture and sensor noise."""
    from PIL import ImageDraw, ImageFilter

    low = rng.uniform(30, 225, (6, 8, 3)).astype(np.uint8)
    picture = Image.fromarray(low, "RGB").resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(picture)
    for _ in range(40):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        w, h = rng.uniform(0.02, 0.3) * width, rng.uniform(0.02, 0.3) * height
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x, y, x + w, y + h], fill=colour)
    picture = picture.filter(ImageFilter.GaussianBlur(max(1.0, width / 2000)))
    texture = rng.normal(0, 10, (height // 4 + 1, width // 4 + 1, 1))
    fine = np.asarray(
        Image.fromarray(texture[..., 0].astype(np.float32), "F").resize((width, height), Image.Resampling.BILINEAR)
    )
    pixels = np.asarray(picture, np.float32) + fine[..., None] + rng.normal(0, 2.5, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def photos(count: int, width: int, height: int, distinct: int = 24, seed: int = 3) -> Path:
    """A folder of `count` JPEGs (q90) of `width` x `height`, `distinct` different pictures among them."""

    def build(folder: Path) -> None:
        rng = np.random.default_rng(seed)
        blobs = []
        for _ in range(min(distinct, count)):
            out = io.BytesIO()
            photo(rng, width, height).save(out, "JPEG", quality=90)
            blobs.append(out.getvalue())
        for number in range(count):
            (folder / f"{number:06d}.jpg").write_bytes(blobs[number % len(blobs)])

    return cached(f"photos-{count}-{width}x{height}", build)


def photo_dataset(images: int, width: int, height: int, seed: int = 5) -> Path:
    """A CVAT-layout dataset of `images` photo-like JPEGs, two boxes each (the scale-out benchmark's input)."""

    def build(folder: Path) -> None:
        ids = train_annotations(folder, np.random.default_rng(seed), images, 2)
        pictures = sorted(photos(min(images, 48), width, height, distinct=48).glob("*.jpg"))
        (folder / "images" / "train").mkdir(parents=True)
        for number, image_id in enumerate(ids):
            (folder / "images" / "train" / f"{image_id}.jpg").write_bytes(pictures[number % len(pictures)].read_bytes())

    return cached(f"photoset-{images}-{width}x{height}", build)
