"""Incremental re-runs: an unchanged source exported again with the same options reuses the published export."""
from __future__ import annotations

import json
import os
import time

import pytest

from openimages_etl.config import ImageSize
from openimages_etl.flows import export_open_images
from openimages_etl.reuse import source_key

from .conftest import make_archive

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_source_key_follows_content_stamps(cvat_dir, tmp_path):
    archive = make_archive(cvat_dir, "zip")
    folder_key, zip_key = source_key(str(cvat_dir), {}), source_key(str(archive), {})
    assert source_key(str(cvat_dir), {}) == folder_key and source_key(str(archive), {}) == zip_key
    meta = cvat_dir / "annotations" / "images.meta"
    os.utime(meta, (time.time() + 5, time.time() + 5))
    assert source_key(str(cvat_dir), {}) != folder_key


def test_unchanged_source_reuses_the_export_and_the_report_says_so(cvat_dir, tmp_path):
    first = export_open_images(source=str(cvat_dir), dest=str(tmp_path), name="ds")
    zip_time = (tmp_path / "ds.zip").stat().st_mtime_ns
    again = export_open_images(source=str(cvat_dir), dest=str(tmp_path), name="ds")
    assert again["reused"] is True and not first["reused"]
    assert again["subsets"] == first["subsets"] and again["output"] == first["output"]
    assert (tmp_path / "ds.zip").stat().st_mtime_ns == zip_time
    assert json.loads((tmp_path / "ds.report.json").read_text())["reused"] is True
    assert "**Reused**" in (tmp_path / "ds.report.md").read_text()


@pytest.mark.parametrize("change", ["options", "source", "zip gone", "no reuse"])
def test_a_change_means_a_new_export(cvat_dir, tmp_path, change):
    export_open_images(source=str(cvat_dir), dest=str(tmp_path), name="ds")
    options = {"image_size": ImageSize.px300k} if change == "options" else {"reuse": False} if change == "no reuse" else {}
    if change == "source":
        bbox = cvat_dir / "annotations" / "train-annotations-bbox.csv"
        bbox.write_text("\n".join(bbox.read_text().splitlines()[:-1]) + "\n")
    if change == "zip gone":
        (tmp_path / "ds.zip").unlink()
    again = export_open_images(source=str(cvat_dir), dest=str(tmp_path), name="ds", **options)
    assert again["reused"] is False and (tmp_path / "ds.zip").exists()
