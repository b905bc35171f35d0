"""The checks across files, on the plain functions (no Prefect): each broken dataset names file, row and rule."""

from __future__ import annotations

import io
import json
import shlex
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from openimages_etl.format.layout import discover
from openimages_etl.format.validation import build_keys, validate_table
from openimages_etl.media.convert import BatchRequest, MaskBatch, convert_batch
from openimages_etl.storage.locations import DatasetRoot

from .helpers import ANN, validate


def _edit_csv(path: Path, line: int, column: str, value: str) -> str:
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    fields = lines[line - 1].split(",")
    old = fields[header.index(column)]
    fields[header.index(column)] = value
    lines[line - 1] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    return old


def _first_id(folder: Path, subset: str = "train") -> str:
    return (folder / ANN / f"{subset}-images-with-rotation.csv").read_text().splitlines()[1].split(",")[0]


def undefined_label(folder: Path) -> tuple:
    _edit_csv(folder / ANN / "train-annotations-human-imagelabels.csv", 3, "LabelName", "/m/nothing")
    return (f"{ANN}/train-annotations-human-imagelabels.csv", 3, "LabelName", "LabelName defined in class descriptions")


def unknown_image(folder: Path) -> tuple:
    _edit_csv(folder / ANN / "validation-annotations-bbox.csv", 2, "ImageID", "ffffffffffffffff")
    return (f"{ANN}/validation-annotations-bbox.csv", 2, "ImageID", "ImageID in image list")


def missing_image_file(folder: Path) -> tuple:
    """An image with a box loses its file and its images.meta line: Datumaro could not size the box."""
    boxes = folder / ANN / "train-annotations-bbox.csv"
    image_id = boxes.read_text().splitlines()[1].split(",")[0]
    (folder / "images" / "train" / f"{image_id}.jpg").unlink()
    meta = folder / ANN / "images.meta"
    meta.write_text("".join(line for line in meta.read_text().splitlines(True) if not line.startswith(image_id)))
    return (f"{ANN}/train-annotations-bbox.csv", 2, "ImageID", "image file present, or its size in images.meta")


def missing_mask_file(folder: Path) -> tuple:
    mask = sorted((folder / "masks" / "validation").iterdir())[0]
    lines = (folder / ANN / "validation-annotations-object-segmentation.csv").read_text().splitlines()
    row = next(i for i, line in enumerate(lines, 1) if line.startswith(mask.name))
    mask.unlink()
    return (f"{ANN}/validation-annotations-object-segmentation.csv", row, "MaskPath", "mask file present")


def duplicate_image_id(folder: Path) -> tuple:
    _edit_csv(folder / ANN / "validation-images-with-rotation.csv", 3, "ImageID", _first_id(folder))
    return (f"{ANN}/validation-images-with-rotation.csv", 3, "ImageID", "ImageID unique across image lists")


def bad_images_meta(folder: Path) -> tuple:
    meta = folder / ANN / "images.meta"
    meta.write_text(meta.read_text() + "abc 12\n")
    return (
        f"{ANN}/images.meta",
        len(meta.read_text().splitlines()),
        None,
        "'ImageID height width' with positive integer sizes",
    )


def undefined_hierarchy_label(folder: Path) -> tuple:
    path = folder / ANN / "bbox_labels_600_hierarchy.json"
    tree = json.loads(path.read_text())
    tree["Subcategory"].append({"LabelName": "/m/ghost"})
    path.write_text(json.dumps(tree))
    return (f"{ANN}/bbox_labels_600_hierarchy.json", None, "LabelName", "LabelName defined in class descriptions")


BREAKS = [
    undefined_label,
    unknown_image,
    missing_image_file,
    missing_mask_file,
    duplicate_image_id,
    bad_images_meta,
    undefined_hierarchy_label,
]


@pytest.mark.parametrize("breaks", BREAKS, ids=[b.__name__ for b in BREAKS])
def test_each_cross_file_rule_names_file_row_and_rule(cvat_dir, tmp_path, breaks):
    expected = breaks(cvat_dir)
    found = {(f.file, f.row, f.column, f.check) for f in validate(cvat_dir, tmp_path / "work")}
    assert expected in found


def test_the_sample_is_valid(cvat_dir, official_dir, tmp_path):
    assert validate(cvat_dir, tmp_path / "a") == []
    assert validate(official_dir, tmp_path / "b") == []


def test_an_image_without_its_file_is_valid_when_images_meta_sizes_it(cvat_dir, tmp_path):
    """As Datumaro writes an item whose image it lacks (CVAT imports it without media)."""
    for image in (cvat_dir / "images" / "train").iterdir():
        image.unlink()
    assert validate(cvat_dir, tmp_path / "work") == []


def test_cvat_frame_names_with_spaces_and_folders_are_valid(cvat_dir, tmp_path):
    """As Datumaro writes them: the image under images/<subset>/ with its folders, the id shell-quoted in
    images.meta."""
    renamed = dict(zip((_first_id(cvat_dir), _first_id(cvat_dir, "validation")), ("my photo", "dir/sub dir/img 1")))
    for csv_file in (cvat_dir / ANN).glob("*.csv"):
        text = csv_file.read_text()
        for old, new in renamed.items():
            text = text.replace(f"{old},", f"{new},")  # the ImageID field, not the MaskPath that starts with it
        csv_file.write_text(text)
    meta = cvat_dir / ANN / "images.meta"
    text = meta.read_text()
    for old, new in renamed.items():
        text = text.replace(f"{old} ", f"{shlex.quote(new)} ")
        image = next((cvat_dir / "images").glob(f"*/{old}.*"))
        target = image.parent / f"{new}{image.suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        image.rename(target)
    meta.write_text(text)
    work = tmp_path / "work"
    assert validate(cvat_dir, work) == []
    images = pl.read_parquet(work / "keys" / "images.parquet").filter(pl.col("ImageID").is_in(list(renamed.values())))
    assert images.height == 2 and images.select("path", "height").null_count().row(0) == (0, 0)


def test_every_failing_row_is_reported_not_just_the_first(cvat_dir, tmp_path):
    path = cvat_dir / ANN / "train-annotations-bbox.csv"
    for line in (2, 4, 6):
        _edit_csv(path, line, "IsInside", "7")
    rows = sorted(f.row for f in validate(cvat_dir, tmp_path / "work") if f.column == "IsInside")
    assert rows == [2, 4, 6]


def test_an_empty_mask_at_image_size_is_invalid(cvat_dir, tmp_path):
    """CVAT's importer fails on a mask with no pixel set: report it as invalid data (file, row)."""
    mask = sorted((cvat_dir / "masks" / "train").iterdir())[0]
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8), "L").save(buffer, "PNG")
    mask.write_bytes(buffer.getvalue())
    work = tmp_path / "work"
    layout = discover(DatasetRoot(str(cvat_dir)), work / "index")
    keys = build_keys(layout, work)
    check = next(
        validate_table(layout, t, keys, work)
        for t in layout.tables
        if t.path.endswith("train-annotations-object-segmentation.csv")
    )
    result = convert_batch(BatchRequest(MaskBatch(check, 0, 100), layout, keys, work / "out"))
    assert result.converted == check.rows - 1
    (failure,) = result.failures.samples
    assert failure.file == check.table.path and failure.column == "MaskPath" and "no object pixel" in failure.check


def test_masks_in_official_shards_are_found(official_dir, tmp_path):
    layout = discover(DatasetRoot(str(official_dir)), tmp_path / "index")
    shards = sorted(p.name for p in official_dir.glob("*-masks-*.zip"))
    assert shards and all(zipfile.is_zipfile(official_dir / s) for s in shards)
    assert pl.read_parquet(layout.mask_files.url).get_column("shard").drop_nulls().n_unique() == len(shards)
