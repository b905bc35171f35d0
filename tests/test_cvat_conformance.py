"""Conformance with the real producer: Datumaro's own exporter (what CVAT runs) writes each input in the test's
folder, `openimages-etl export` publishes it as a user would, and Datumaro must see the same dataset in both."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import zipfile

import pytest

from .helpers import HERE, datumaro_view

pytestmark = pytest.mark.slow

# One builder each in tests/datumaro/build_case.py.
CASES = [
    "boxes_attributes",
    "tags",
    "grouped_masks",
    "ungrouped_masks",
    "mask_without_box",
    "empty_items",
    "absent_images",
    "annotations_only",
    "subsets",
    "non_hex_ids",
    "cvat_frame_names",
    "rotation",
]


def differences(source: dict, export: dict) -> list[str]:
    """Every way Datumaro's view of our export differs from its view of the input, one line each."""
    found = [
        f"{key}: input {source[key]!r}, export {export[key]!r}"
        for key in ("categories", "label_parents")
        if source[key] != export[key]
    ]
    if sorted(source["warnings"]) != sorted(export["warnings"]):
        found.append(f"warnings: input {sorted(source['warnings'])}, export {sorted(export['warnings'])}")
    items = [{(item["subset"], item["id"]): item for item in view["items"]} for view in (source, export)]
    for key in sorted(items[0].keys() | items[1].keys()):
        if key not in items[0] or key not in items[1]:
            found.append(f"{key}: only in the {'export' if key in items[1] else 'input'}")
            continue
        before, after = (_comparable(view[key]) for view in items)
        found += [
            f"{key} {field}: input {before[field]!r}, export {after[field]!r}"
            for field in before
            if before[field] != after[field]
        ]
    return found


def mask_boxes(files: dict[str, bytes]) -> dict[str, tuple[str, ...]]:
    """The four box columns of every segmentation row, as written, by MaskPath."""
    rows = [
        row
        for name, data in files.items()
        if name.endswith("-annotations-object-segmentation.csv")
        for row in csv.DictReader(io.StringIO(data.decode()))
    ]
    return {row["MaskPath"]: tuple(row[c] for c in ("BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax")) for row in rows}


def _comparable(item: dict) -> dict:
    """An item without its group numbers (they depend on row order): masks name the box they are grouped with."""
    return {
        **item,
        "bboxes": [{k: v for k, v in box.items() if k != "group"} for box in item["bboxes"]],
        "masks": [{k: v for k, v in mask.items() if k != "group"} for mask in item["masks"]],
    }


@pytest.mark.parametrize("case", CASES)
def test_datumaro_sees_our_export_as_it_sees_its_own(case, datumaro_python, prefect_server, tmp_path):
    source, dest = tmp_path / "input", tmp_path / "out"
    built = subprocess.run(
        [datumaro_python, str(HERE / "datumaro" / "build_case.py"), case, str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert built.returncode == 0, built.stderr[-3000:]
    exported = subprocess.run(
        [sys.executable, "-m", "openimages_etl.cli", "export", str(source), str(dest), "--name", "ds"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PREFECT_API_URL": prefect_server},
    )
    assert exported.returncode == 0, exported.stderr[-3000:]
    # Datumaro sizes masks from images.meta only, which its exporter fills only for items with a box: read the input
    # with its image files' sizes too, or its view loses box-less items' masks (our images.meta lists every image).
    source_view = datumaro_view(datumaro_python, source, "--sizes-from-image-files")
    assert differences(source_view, datumaro_view(datumaro_python, dest / "ds.zip")) == []
    with zipfile.ZipFile(dest / "ds.zip") as archive:
        published = {name: archive.read(name) for name in archive.namelist() if name.endswith(".csv")}
    # Datumaro reads "nan" as it reads an empty field: the box columns must come out as they came in.
    assert mask_boxes(published) == mask_boxes({p.name: p.read_bytes() for p in (source / "annotations").glob("*.csv")})
    if case == "rotation":  # Datumaro ignores the column: the export must still carry it
        rows = csv.DictReader(io.StringIO(published["annotations/train-images-with-rotation.csv"].decode()))
        assert {row["ImageID"]: row["Rotation"] for row in rows} == {"1100000000000001": "90.0", "1100000000000002": ""}
