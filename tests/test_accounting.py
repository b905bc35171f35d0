"""Accounting: every input row and media file is published, rejected or not selected, or the run fails."""

from __future__ import annotations

import dataclasses
import json

import pytest

from openimages_etl.cli import main
from openimages_etl.config import OnInvalid
from openimages_etl.flows import export_open_images
from openimages_etl.options import ExportOptions
from openimages_etl.output.accounting import unbalanced
from openimages_etl.tasks import convert as convert_tasks

ROW = {"file": "a.csv", "kind": "boxes", "rows_in": 10, "published": {"train": 6}, "rejected": 3, "not_selected": 1}
MEDIA = {"images": {"in": 5, "published": 4, "rejected": 1}}


@pytest.mark.parametrize(
    ("files", "read", "media", "problems"),
    [
        ([ROW], {"a.csv": 10}, MEDIA, 0),
        ([ROW], {"a.csv": 11}, MEDIA, 1),  # a row read in validation never reached the partition
        ([{**ROW, "rejected": 2}], {"a.csv": 10}, MEDIA, 1),  # a row partitioned but neither published nor rejected
        ([ROW], {"a.csv": 10}, {"images": {"in": 5, "published": 4, "rejected": 0}}, 1),  # an image lost
        ([], {}, {"masks": {"in": 0, "published": 0, "rejected": 0}}, 0),
    ],
)
def test_what_does_not_add_up_is_named(files, read, media, problems):
    assert len(unbalanced(files, read, media)) == problems


@pytest.mark.usefixtures("prefect_api")
def test_image_and_mask_rejections_are_accounted(cvat_dir, tmp_path):
    image = sorted((cvat_dir / "images" / "train").iterdir())[0]
    image.write_bytes(image.read_bytes()[:200])  # truncated: rejected with its annotations
    mask = sorted((cvat_dir / "masks" / "validation").iterdir())[0]
    mask.write_bytes(b"not a png")
    options = ExportOptions(dest=str(tmp_path / "out"), name="ds", on_invalid=OnInvalid.drop)
    report = export_open_images(source=str(cvat_dir), options=options)
    assert report["media"]["images"] == {"in": 9, "published": 8, "rejected": 1}
    assert report["media"]["masks"] == {"in": 9, "published": 8, "rejected": 1}
    for row in report["files"]:
        assert row["rows_in"] == sum(row["published"].values()) + row["rejected"] + row["not_selected"]
    assert report["rejected"]["annotations/train-images-with-rotation.csv"] == 1
    assert report["rejected"]["annotations/validation-annotations-object-segmentation.csv"] == 1


@pytest.mark.usefixtures("prefect_api")
def test_a_lost_row_fails_the_run_and_publishes_nothing(cvat_dir, tmp_path, monkeypatch, capsys):
    partition = convert_tasks.partition_table

    def losing_a_row(*args, **kwargs):  # the fault only: one published row vanishes
        result = partition(*args, **kwargs)
        first = next(iter(result.published), None)
        return (
            dataclasses.replace(result, published={**result.published, first: result.published[first] - 1})
            if first
            else result
        )

    monkeypatch.setattr(convert_tasks, "partition_table", losing_a_row)
    dest = tmp_path / "out"
    assert main(["export", str(cvat_dir), str(dest), "--name", "ds"]) == 4
    assert "counts do not add up" in capsys.readouterr().err
    assert not (dest / "ds.zip").exists()
    assert json.loads((dest / "ds.report.json").read_text())["status"] == "failed"
