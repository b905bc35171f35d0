"""Incremental re-runs: an unchanged source (archive or folder) exported again with the same parameters
publishes nothing."""

from __future__ import annotations

import json
import os
import time

import pytest

from openimages_etl.config import ImageSize
from openimages_etl.flows import export_open_images
from openimages_etl.options import ExportOptions
from openimages_etl.storage.reuse import source_key

from .helpers import make_archive

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_source_key_follows_content_stamps(cvat_dir, tmp_path):
    archive = make_archive(cvat_dir, "zip")
    folder_key, zip_key = source_key(str(cvat_dir), {}), source_key(str(archive), {})
    assert source_key(str(cvat_dir), {}) == folder_key and source_key(str(archive), {}) == zip_key
    meta = cvat_dir / "annotations" / "images.meta"
    os.utime(meta, (time.time() + 5, time.time() + 5))
    assert source_key(str(cvat_dir), {}) != folder_key


def test_unchanged_folder_source_is_not_exported_again_and_the_report_says_so(cvat_dir, tmp_path):
    first = export_open_images(source=str(cvat_dir), options=ExportOptions(dest=str(tmp_path), name="ds"))
    zip_time, report_time = ((tmp_path / f).stat().st_mtime_ns for f in ("ds.zip", "ds.report.json"))
    again = export_open_images(source=str(cvat_dir), options=ExportOptions(dest=str(tmp_path), name="ds"))
    assert first["status"] == "published" and again["status"] == "unchanged"
    assert "already holds this export" in again["note"]
    assert again["subsets"] == first["subsets"] and again["output"] == first["output"]
    assert again["run"]["idempotency_key"] == first["run"]["idempotency_key"]
    assert (tmp_path / "ds.zip").stat().st_mtime_ns == zip_time  # nothing written at DEST
    assert (tmp_path / "ds.report.json").stat().st_mtime_ns == report_time
    assert json.loads((tmp_path / "ds.report.json").read_text())["status"] == "published"


@pytest.mark.parametrize(
    "change",
    [
        pytest.param("options", marks=pytest.mark.slow),
        "source",
        pytest.param("zip gone", marks=pytest.mark.slow),
        pytest.param("no reuse", marks=pytest.mark.slow),
    ],
)
def test_a_change_means_a_new_export(cvat_dir, tmp_path, change):
    export_open_images(source=str(cvat_dir), options=ExportOptions(dest=str(tmp_path), name="ds"))
    options = (
        {"image_size": ImageSize.px300k} if change == "options" else {"reuse": False} if change == "no reuse" else {}
    )
    if change == "source":
        bbox = cvat_dir / "annotations" / "train-annotations-bbox.csv"
        bbox.write_text("\n".join(bbox.read_text().splitlines()[:-1]) + "\n")
    if change == "zip gone":
        (tmp_path / "ds.zip").unlink()
    again = export_open_images(source=str(cvat_dir), options=ExportOptions(dest=str(tmp_path), name="ds", **options))
    assert again["status"] == "published" and (tmp_path / "ds.zip").exists()
