"""A small CVAT-layout dataset with a hand-made hierarchy for the selection tests: a class with two parents (Toy car
under Car and Toy), a Part edge (Wheel of Car), a display name two classes share (Bat), flags on some boxes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from PIL import Image

CLASSES = {
    "/m/veh": "Vehicle",
    "/m/car": "Car",
    "/m/truck": "Truck",
    "/m/boat": "Boat",
    "/m/rocket": "Rocket",
    "/m/toy": "Toy",
    "/m/toycar": "Toy car",
    "/m/dog": "Dog",
    "/m/wheel": "Wheel",
    "/m/bat1": "Bat",
    "/m/bat2": "Bat",
}
HIERARCHY = {
    "LabelName": "/m/0bl9f",
    "Subcategory": [
        {
            "LabelName": "/m/veh",
            "Subcategory": [
                {
                    "LabelName": "/m/car",
                    "Subcategory": [{"LabelName": "/m/toycar"}],
                    "Part": [{"LabelName": "/m/wheel"}],
                },
                {"LabelName": "/m/truck"},
                {"LabelName": "/m/boat"},
                {"LabelName": "/m/rocket"},
            ],
        },
        {"LabelName": "/m/toy", "Subcategory": [{"LabelName": "/m/toycar"}]},
        {"LabelName": "/m/dog"},
        {"LabelName": "/m/wheel"},
        {"LabelName": "/m/bat1"},
        {"LabelName": "/m/bat2"},
    ],
}
# ImageID -> annotations: ("box", MID, flags "occluded truncated group-of depiction inside"),
# ("label", MID, confidence), ("mask", MID)
ANNOTATIONS = {
    "train": {
        "t01": [("box", "/m/car", "00000"), ("box", "/m/dog", "00000"), ("mask", "/m/car")],
        "t02": [("box", "/m/truck", "00100"), ("label", "/m/car", "1")],
        "t03": [("box", "/m/boat", "00000"), ("box", "/m/rocket", "00000")],
        "t04": [("box", "/m/rocket", "00000"), ("label", "/m/veh", "0")],
        "t05": [("box", "/m/toycar", "00000"), ("mask", "/m/toycar")],
        "t06": [("box", "/m/dog", "00000"), ("label", "/m/car", "0")],
        "t07": [("box", "/m/car", "10000"), ("box", "/m/wheel", "00000"), ("mask", "/m/car")],
        "t08": [("label", "/m/truck", "1"), ("label", "/m/boat", "0"), ("label", "/m/car", "1")],
        "t09": [("box", "/m/bat1", "00000"), ("box", "/m/veh", "00010")],
        "t10": [("box", "/m/dog", "00010")],
        "t11": [("box", "/m/toy", "00000")],
        "t12": [],
    },
    "validation": {
        "v01": [("box", "/m/car", "00000")],
        "v02": [("box", "/m/truck", "00000")],
        "v03": [("box", "/m/dog", "00000"), ("mask", "/m/dog")],
        "v04": [("label", "/m/boat", "1")],
    },
}
SIZE = (12, 16)  # height, width
BOX_HEADER = [
    "ImageID",
    "Source",
    "LabelName",
    "Confidence",
    "XMin",
    "XMax",
    "YMin",
    "YMax",
    "IsOccluded",
    "IsTruncated",
    "IsGroupOf",
    "IsDepiction",
    "IsInside",
]


def make_dataset(dest: Path) -> Path:
    notes = dest / "annotations"
    notes.mkdir(parents=True)
    _csv(notes / "class-descriptions.csv", None, list(CLASSES.items()))
    (notes / "bbox_labels_600_hierarchy.json").write_text(json.dumps(HIERARCHY))
    height, width = SIZE
    for subset, images in ANNOTATIONS.items():
        boxes, labels, masks = [], [], []
        for number, (image_id, image_annotations) in enumerate(images.items()):
            folder = dest / "images" / subset
            folder.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (width, height), (20 * number, 100, 200)).save(folder / f"{image_id}.jpg")
            for kind, mid, extra in [(*a, None) if len(a) == 2 else a for a in image_annotations]:
                if kind == "box":
                    boxes.append([image_id, "xclick", mid, "1", "0.1", "0.6", "0.2", "0.7", *extra])
                elif kind == "label":
                    labels.append([image_id, "verification", mid, extra])
                else:
                    name = f"{image_id}_{mid.rsplit('/', 1)[-1]}_b0.png"
                    mask = Image.new("L", (width, height), 0)
                    mask.paste(1, (2, 2, 8, 8))
                    (dest / "masks" / subset).mkdir(parents=True, exist_ok=True)
                    buffer = io.BytesIO()
                    mask.save(buffer, "PNG")
                    (dest / "masks" / subset / name).write_bytes(buffer.getvalue())
                    masks.append([name, image_id, mid, "b0", "0.1", "0.5", "0.1", "0.6", "0.8", ""])
        _csv(
            notes / f"{subset}-images-with-rotation.csv",
            ["ImageID", "Subset", "Rotation"],
            [[i, subset, ""] for i in images],
        )
        _csv(notes / f"{subset}-annotations-bbox.csv", BOX_HEADER, boxes)
        _csv(
            notes / f"{subset}-annotations-human-imagelabels.csv",
            ["ImageID", "Source", "LabelName", "Confidence"],
            labels,
        )
        _csv(
            notes / f"{subset}-annotations-object-segmentation.csv",
            [
                "MaskPath",
                "ImageID",
                "LabelName",
                "BoxID",
                "BoxXMin",
                "BoxXMax",
                "BoxYMin",
                "BoxYMax",
                "PredictedIoU",
                "Clicks",
            ],
            masks,
        )
    return dest


def _csv(path: Path, header: list[str] | None, rows: list) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        if header:
            writer.writerow(header)
        writer.writerows(rows)
