"""The proof that CVAT can take our zips: Datumaro 1.13 (its own venv) imports every export as it is."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest

from openimages_etl.config import ImageSize
from openimages_etl.flows import export_open_images
from openimages_etl.options import ExportOptions

from .helpers import HERE, datumaro_view, make_archive

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]


def _rows(archive: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(archive.read(name).decode())))


@pytest.mark.parametrize(("layout", "size"), [("cvat", ImageSize.original), ("official", ImageSize.px300k)])
def test_export_imports_with_the_same_items_boxes_labels_and_masks(request, datumaro_python, layout, size, tmp_path):
    source = make_archive(request.getfixturevalue(f"{layout}_dir"), "zip")
    export_open_images(source=str(source), options=ExportOptions(dest=str(tmp_path), name="ds", image_size=size))
    view = datumaro_view(datumaro_python, tmp_path / "ds.zip")
    assert view["warnings"] == []
    with zipfile.ZipFile(tmp_path / "ds.zip") as archive:
        meta = {
            line.split()[0]: [int(v) for v in line.split()[1:]]
            for line in archive.read("annotations/images.meta").decode().splitlines()[1:]
        }
        boxes = [
            row
            for subset in ("train", "validation")
            for row in _rows(archive, f"annotations/{subset}-annotations-bbox.csv")
        ]
        labels = [
            row
            for subset in ("train", "validation")
            for row in _rows(archive, f"annotations/{subset}-annotations-human-imagelabels.csv")
        ]
    items = {item["id"]: item for item in view["items"]}
    assert len(items) == 9 and {i["subset"] for i in items.values()} == {"train", "validation"}
    for image_id, item in items.items():
        assert item["has_image"] and item["image_size"] == meta[image_id]
        height, width = meta[image_id]
        expected = sorted(
            (b["LabelName"], round(float(b["XMin"]) * width), round(float(b["YMin"]) * height))
            for b in boxes
            if b["ImageID"] == image_id
        )
        assert sorted((b["label"], round(b["x"]), round(b["y"])) for b in item["bboxes"]) == expected
        assert len(item["labels"]) == sum(1 for row in labels if row["ImageID"] == image_id)
        assert item["masks"] and all(mask["area"] > 0 and mask["shape"] == [height, width] for mask in item["masks"])


def test_datumaro_written_dataset_round_trips_unchanged(datumaro_python, tmp_path):
    fixture = HERE / "fixtures" / "datumaro_export"
    export_open_images(source=str(fixture), options=ExportOptions(dest=str(tmp_path), name="again"))
    assert datumaro_view(datumaro_python, tmp_path / "again.zip") == datumaro_view(datumaro_python, fixture)


@pytest.mark.parametrize(
    "parameters",
    [
        {"classes": ["Vehicle"], "exclude_classes": ["Rocket"], "per_class": 2, "drop_boxes": ["group-of"]},
        {"classes": ["Vehicle", "Dog"], "only_matching": True, "merge_subclasses": True},
    ],
)
def test_selected_export_imports_with_its_pruned_classes(datumaro_python, tmp_path, parameters):
    from .selection_data import make_dataset

    options = ExportOptions(dest=str(tmp_path), name="sel", selection=parameters)
    report = export_open_images(source=str(make_dataset(tmp_path / "ds")), options=options)
    view = datumaro_view(datumaro_python, tmp_path / "sel.zip")
    assert view["warnings"] == []
    with zipfile.ZipFile(tmp_path / "sel.zip") as archive:
        classes = [
            line.split(",")[0] for line in archive.read("annotations/class-descriptions.csv").decode().splitlines()
        ]
        listed = [
            row["ImageID"]
            for subset in ("train", "validation")
            for row in _rows(archive, f"annotations/{subset}-images-with-rotation.csv")
        ]
    assert sorted(item["id"] for item in view["items"]) == sorted(listed)
    assert sum(report["subsets"][s]["images"] for s in report["subsets"]) == len(listed)
    assert set(view["categories"]) == set(classes)
    used = {a["label"] for item in view["items"] for kind in ("bboxes", "labels", "masks") for a in item[kind]}
    assert used <= set(classes)
    assert all(item["has_image"] for item in view["items"])
