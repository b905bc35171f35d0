"""A small, deterministic Open Images dataset with real JPEGs and PNG masks, in either layout."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from openimages_etl.schemas.kinds import TABLES, TableKind

CLASSES = [
    ("/m/01g317", "Person"),
    ("/m/0k4j", "Car"),
    ("/m/0bt9lr", "Dog"),
    ("/m/01yrx", "Cat"),
    ("/m/0199g", "Bicycle"),
]
HIERARCHY = {
    "LabelName": "/m/0bl9f",
    "Subcategory": [
        {"LabelName": "/m/01g317"},
        {"LabelName": "/m/0k4j", "Part": [{"LabelName": "/m/0199g"}]},
        {"LabelName": "/m/0bt9lr"},
        {"LabelName": "/m/01yrx"},
        {"LabelName": "/m/0199g"},
    ],
}
IMAGE_COLUMNS = TABLES[TableKind.images].columns
BOX_COLUMNS = TABLES[TableKind.boxes].required  # the 13 columns of V4
CLICK_COLUMNS = [c for c in TABLES[TableKind.boxes].columns if c not in BOX_COLUMNS]  # V6 adds the XClick points
LABEL_COLUMNS = TABLES[TableKind.labels].columns
SEGMENTATION_COLUMNS = TABLES[TableKind.masks].columns
SIZES = [(480, 640), (600, 800), (375, 500), (768, 1024)]  # (height, width), some above 300k pixels


def make_sample(
    dest: Path, layout: str = "cvat", images_per_subset: dict[str, int] | None = None, seed: int = 0
) -> Path:
    """Write a dataset folder: `layout` is "cvat" (annotations/, images/<subset>/, masks/<subset>/) or
    "official" (Google's file names at the top, images in <split>/, masks in <split>-masks-<hex>.zip shards)."""
    rng = np.random.default_rng(seed)
    counts = images_per_subset or {"train": 6, "validation": 3}
    official = layout == "official"
    notes = dest / ("" if official else "annotations")
    notes.mkdir(parents=True, exist_ok=True)
    _write_csv(
        notes / ("oidv7-class-descriptions.csv" if official else "class-descriptions.csv"),
        ["LabelName", "DisplayName"] if official else None,
        CLASSES,
    )
    (notes / "bbox_labels_600_hierarchy.json").write_text(json.dumps(HIERARCHY, indent=1))
    meta = ["# ImageID height width"]
    shards: dict[str, zipfile.ZipFile] = {}
    for subset, count in counts.items():
        image_rows, boxes, labels, segments = [], [], [], []
        for number in range(count):
            image_id = f"{rng.integers(0, 2**63):016x}"
            height, width = SIZES[(number + len(subset)) % len(SIZES)]
            rotation = "90.0" if number == 1 else ("" if number % 3 else "0.0")
            picture = _picture(rng, height, width)
            draw = ImageDraw.Draw(picture)
            for box_number in range(1 + number % 3):
                label = CLASSES[(number + box_number) % len(CLASSES)][0]
                x0, y0 = rng.uniform(0.05, 0.5, 2)
                x1, y1 = x0 + rng.uniform(0.1, 0.45), y0 + rng.uniform(0.1, 0.45)
                flags = [str(int(v)) for v in rng.integers(-1, 2, 5)]
                box = [f"{x0:.6f}", f"{x1:.6f}", f"{y0:.6f}", f"{y1:.6f}"]
                clicks = [f"{v:.6f}" for v in (x0, x1, x0, x1, y0, y0, y1, y1)]
                boxes.append([image_id, "xclick", label, "1", *box, *flags] + (clicks if official else []))
                draw.rectangle([x0 * width, y0 * height, x1 * width, y1 * height], outline=(255, 255, 0), width=3)
                if box_number == 0:
                    box_id = f"{rng.integers(0, 2**32):08x}"
                    mask_name = f"{image_id}_{label.replace('/', '')}_{box_id}.png"
                    scale = 0.5 if official else 1.0  # official masks are not the image's size
                    mask = _mask(int(height * scale), int(width * scale), (x0, y0, x1, y1))
                    segments.append(
                        [mask_name, image_id, label, box_id, *box, "0.85", f"{x0:.4f} {y0:.4f} 1;{x1:.4f} {y1:.4f} 0"]
                    )
                    if official:
                        shard_name = f"{subset}-masks-{image_id[0]}.zip"
                        if shard_name not in shards:
                            shards[shard_name] = zipfile.ZipFile(dest / shard_name, "w")
                        shards[shard_name].writestr(mask_name, mask)
                    else:
                        (dest / "masks" / subset).mkdir(parents=True, exist_ok=True)
                        (dest / "masks" / subset / mask_name).write_bytes(mask)
            labels.append([image_id, "verification", CLASSES[number % len(CLASSES)][0], "1"])
            labels.append([image_id, "verification", CLASSES[(number + 2) % len(CLASSES)][0], "0"])
            folder = dest / subset if official else dest / "images" / subset
            folder.mkdir(parents=True, exist_ok=True)
            picture.save(folder / f"{image_id}.jpg", quality=90)
            image_rows.append([image_id, subset, "", "", "", "", "", "", "", "", "", rotation])
            meta.append(f"{image_id} {height} {width}")
        prefix = "oidv6-train" if official and subset == "train" else subset
        image_list = f"{subset}-images-boxable-with-rotation.csv" if official else f"{subset}-images-with-rotation.csv"
        _write_csv(notes / image_list, IMAGE_COLUMNS, image_rows)
        _write_csv(notes / f"{prefix}-annotations-bbox.csv", BOX_COLUMNS + (CLICK_COLUMNS if official else []), boxes)
        _write_csv(
            notes / f"{subset}-annotations-human-imagelabels{'-boxable' if official else ''}.csv", LABEL_COLUMNS, labels
        )
        _write_csv(notes / f"{subset}-annotations-object-segmentation.csv", SEGMENTATION_COLUMNS, segments)
    for shard in shards.values():
        shard.close()
    if not official:
        (notes / "images.meta").write_text("\n".join(meta) + "\n")
    return dest


def _picture(rng: np.random.Generator, height: int, width: int) -> Image.Image:
    """A smooth colour gradient with noise: compresses like a photo, not like a flat fill."""
    ys, xs = np.mgrid[0:height, 0:width]
    base = rng.uniform(40, 200, 3)
    pixels = np.stack([base[c] + 40 * np.sin(xs / (30 + 10 * c)) + 30 * np.cos(ys / 45) for c in range(3)], axis=-1)
    pixels += rng.normal(0, 6, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def _mask(height: int, width: int, box: tuple[float, float, float, float]) -> bytes:
    x0, y0, x1, y1 = box
    array = np.zeros((height, width), np.uint8)
    cy, cx = (y0 + y1) / 2 * height, (x0 + x1) / 2 * width
    ry, rx = max((y1 - y0) / 2 * height, 2), max((x1 - x0) / 2 * width, 2)
    ys, xs = np.mgrid[0:height, 0:width]
    array[((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 <= 1] = 255
    buffer = io.BytesIO()
    Image.fromarray(array, "L").save(buffer, "PNG")
    return buffer.getvalue()


def _write_csv(path: Path, header: list[str] | None, rows: list[list[str]] | list[tuple[str, str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        if header:
            writer.writerow(header)
        writer.writerows(rows)


def zip_folder(folder: Path, archive: Path) -> Path:
    """Zip a dataset folder (members relative to it), as users and CVAT hand them over."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                handle.write(path, path.relative_to(folder).as_posix())
    return archive
