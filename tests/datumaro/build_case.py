#!/usr/bin/env python3
"""Write one conformance case with Datumaro's own `open_images` exporter (what CVAT runs).

Runs with the Datumaro venv's python, like dm_summary.py:

    "$DATUMARO_VENV/bin/python" tests/datumaro/build_case.py CASE OUT_DIR

Each builder below is one shape a CVAT export takes; tests/test_cvat_conformance.py lists them.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
from datumaro.components.annotation import AnnotationType, Bbox, Label, LabelCategories, Mask, Polygon
from datumaro.components.dataset import Dataset
from datumaro.components.dataset_base import DatasetItem
from datumaro.components.media import Image

# MIDs (a parent and its child among them) and CVAT-style plain names, one with a space and one with a comma
LABELS = ["/m/01g317", "/m/0k4j", "/m/0199g", "car", "traffic light", "person, adult"]
H, W = 48, 64


def image(seed: int, height: int = H, width: int = W, ext: str = ".jpg") -> Image:
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    return Image.from_numpy(pixels, ext=ext)


def absent_image(height: int = H, width: int = W) -> Image:
    """An image known by its size only: no file is written, images.meta carries the size."""
    return Image.from_file(path=f"/nonexistent/{height}x{width}.jpg", size=(height, width))


def blob(top: int, left: int, bottom: int, right: int, height: int = H, width: int = W) -> np.ndarray:
    mask = np.zeros((height, width), bool)
    mask[top:bottom, left:right] = True
    mask[top, left] = False  # not a plain rectangle, so a mask mistaken for its box shows
    return mask


def dataset(items: list[DatasetItem]) -> Dataset:
    categories = LabelCategories()
    for name in LABELS:
        categories.add(name, parent="/m/0k4j" if name == "/m/0199g" else "")
    return Dataset.from_iterable(items, categories={AnnotationType.label: categories})


def boxes_attributes() -> Dataset:
    flags = ["occluded", "truncated", "is_group_of", "is_depiction", "is_inside"]
    boxes = [
        Bbox(2 + 6 * i, 3, 5, 8 + i, label=i % len(LABELS), attributes={flag: value})
        for i, (flag, value) in enumerate((f, v) for f in flags for v in (True, False))
    ]
    boxes += [
        Bbox(1, 1, 20, 30, label=0),
        Bbox(10, 12, 30.5, 20.25, label=1, attributes={"score": 0.25, "occluded": True}),
    ]
    return dataset([DatasetItem("0001eeaf4aed83f9", subset="train", media=image(1), annotations=boxes)])


def tags() -> Dataset:
    return dataset(
        [
            DatasetItem(
                "000a1249af2bc5f0",
                subset="train",
                media=image(2),
                annotations=[Label(0, attributes={"score": 1}), Label(1, attributes={"score": 0}), Label(3)],
            )
        ]
    )


def grouped_masks() -> Dataset:
    return dataset(
        [
            DatasetItem(
                "00a159a661a2f5aa",
                subset="train",
                media=image(3),
                annotations=[
                    Bbox(10, 5, 20, 30, label=0, group=1),
                    Mask(blob(5, 10, 35, 30), label=0, group=1),
                    Bbox(30, 20, 30, 20, label=2, group=2),
                    Mask(blob(20, 30, 40, 60), label=2, group=2, attributes={"box_id": "0badc0de"}),
                    Bbox(0, 0, 8, 8, label=1),
                ],
            )
        ]
    )


def ungrouped_masks() -> Dataset:
    """Polygons, turned into masks as CVAT's exporter does: no group, so no box columns."""
    data = dataset(
        [
            DatasetItem(
                "0b2f1e4c9d8a7b6c",
                subset="train",
                media=image(4),
                annotations=[
                    Bbox(10, 5, 20, 30, label=0),
                    Polygon([10, 5, 30, 5, 30, 35, 10, 35], label=0),
                    Polygon([40, 10, 60, 10, 50, 40], label=3),
                    Polygon([2, 2, 12, 2, 12, 12], label=3),
                ],
            )
        ]
    )
    return data.transform("polygons_to_masks")


def mask_without_box() -> Dataset:
    return dataset(
        [
            DatasetItem(
                "0c3d4e5f60718293", subset="train", media=image(5), annotations=[Mask(blob(1, 1, 47, 63), label=1)]
            ),
            DatasetItem(
                "0c3d4e5f60718294",
                subset="train",
                media=image(6, 30, 40),
                annotations=[
                    Mask(blob(1, 1, 20, 20, 30, 40), label=0),
                    Mask(blob(5, 5, 25, 35, 30, 40), label=0),
                    Label(0),
                ],
            ),
        ]
    )


def empty_items() -> Dataset:
    return dataset(
        [
            DatasetItem(f"0d00000000000{i:03d}", subset="train", media=image(10 + i, ext=[".jpg", ".png"][i % 2]))
            for i in range(3)
        ]
        + [DatasetItem("0d00000000000100", subset="train", media=image(20), annotations=[Bbox(1, 2, 3, 4, label=0)])]
    )


def absent_images() -> Dataset:
    return dataset(
        [
            DatasetItem(
                "0e00000000000001",
                subset="train",
                media=absent_image(),
                annotations=[
                    Bbox(10, 5, 20, 30, label=0, group=1),
                    Mask(blob(5, 10, 35, 30), label=0, group=1),
                    Label(1),
                ],
            ),
            DatasetItem(
                "0e00000000000002",
                subset="train",
                media=absent_image(30, 40),
                annotations=[Bbox(0, 0, 40, 30, label=3)],
            ),
            DatasetItem("0e00000000000003", subset="train", media=image(30)),
            DatasetItem(
                "0e00000000000004",
                subset="train",
                media=absent_image(),
                annotations=[Label(2, attributes={"score": 0})],
            ),
        ]
    )


def annotations_only() -> Dataset:
    return dataset(
        [
            DatasetItem(
                "0f00000000000001",
                subset="train",
                media=image(40),
                annotations=[
                    Bbox(10, 5, 20, 30, label=0, group=1),
                    Mask(blob(5, 10, 35, 30), label=0, group=1),
                    Bbox(1, 1, 5, 5, label=1, attributes={"truncated": True}),
                ],
            ),
            DatasetItem("0f00000000000002", subset="validation", media=image(41, 30, 40), annotations=[Label(3)]),
        ]
    )


def subsets() -> Dataset:
    """None is Datumaro's "default" subset, what a CVAT task without subsets exports."""
    return dataset(
        [
            DatasetItem(
                f"1000000000000{i:03d}",
                subset=subset,
                media=image(50 + i),
                annotations=[Bbox(i, i, 10, 10, label=i % 4), Label(i % 4)],
            )
            for i, subset in enumerate(["train", "validation", "my-val", "test_2", "Night_Shots-2", None])
        ]
    )


def non_hex_ids() -> Dataset:
    ids = ["frame_000001", "IMG-20240101.v2", "cat", "a+b=c@d", "00ZZ"]
    return dataset(
        [
            DatasetItem(
                item_id,
                subset="train",
                media=image(60 + i),
                annotations=[
                    Bbox(5, 5, 10, 10, label=0, group=1),
                    Mask(blob(5, 5, 15, 15), label=0, group=1),
                    Mask(blob(20, 20, 40, 40), label=3),
                ],
            )
            for i, item_id in enumerate(ids)
        ]
    )


def cvat_frame_names() -> Dataset:
    """Frame names as CVAT tasks have them: spaces, sub-folders (a task uploaded with folders), a comma, Unicode,
    a quote; some without a box, so only our images.meta (shell-quoted, as Datumaro writes it) carries their size."""
    ids = ["my photo", "dir/img1", "dir/sub dir/img 2", "_DSC0001", "photo, 2", "фото 3", "it's"]
    return dataset(
        [
            DatasetItem(
                item_id,
                subset="train",
                media=image(80 + i),
                annotations=[Bbox(5, 5, 10, 10, label=0, group=1), Mask(blob(5, 5, 15, 15), label=0, group=1), Label(1)]
                if i % 2
                else [Mask(blob(20, 20, 40, 40), label=3)],
            )
            for i, item_id in enumerate(ids)
        ]
        + [
            DatasetItem(
                "absent/my frame", subset="validation", media=absent_image(), annotations=[Bbox(1, 2, 3, 4, label=0)]
            )
        ]
    )


def rotation() -> Dataset:
    return dataset(
        [
            DatasetItem(
                "1100000000000001",
                subset="train",
                media=image(70),
                annotations=[Bbox(10, 5, 20, 30, label=0, group=1), Mask(blob(5, 10, 35, 30), label=0, group=1)],
            ),
            DatasetItem("1100000000000002", subset="train", media=image(71)),
        ]
    )


def set_rotation(out: Path, image_id: str, degrees: str) -> None:
    """Datumaro has no field for Rotation (its exporter leaves the column empty, its importer ignores it):
    set it in the written image list, as Google's lists and a user's edit carry it."""
    path = out / "annotations" / "train-images-with-rotation.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        if row["ImageID"] == image_id:
            row["Rotation"] = degrees
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


CASES = {
    f.__name__: f
    for f in (
        boxes_attributes,
        tags,
        grouped_masks,
        ungrouped_masks,
        mask_without_box,
        empty_items,
        absent_images,
        annotations_only,
        subsets,
        non_hex_ids,
        cvat_frame_names,
        rotation,
    )
}


def main(case: str, out: str) -> None:
    CASES[case]().export(out, "open_images", save_media=case != "annotations_only")
    if case == "rotation":
        set_rotation(Path(out), "1100000000000001", "90.0")


if __name__ == "__main__":
    main(*sys.argv[1:])
