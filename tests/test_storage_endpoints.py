"""Sources and destinations on real endpoints: S3 (moto server on 127.0.0.1) and fsspec's memory file system."""

from __future__ import annotations

import json
import zipfile

import fsspec
import httpx
import pytest
from prefect.settings import PREFECT_API_URL

from openimages_etl.flows import export_open_images
from openimages_etl.options import ExportOptions

from .helpers import make_archive

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]


def test_s3_source_and_destination(cvat_dir, s3_bucket, tmp_path):
    s3 = fsspec.filesystem("s3")
    s3.put_file(str(make_archive(cvat_dir, "zip")), f"{s3_bucket}/uploads/team-a.zip")
    options = ExportOptions(dest=f"s3://{s3_bucket}/exports", per_subset=True)
    report = export_open_images(source=f"s3://{s3_bucket}/uploads/team-a.zip", options=options)
    assert report["output"] == f"s3://{s3_bucket}/exports/team-a.zip"
    s3.invalidate_cache()
    names = sorted(p.rsplit("/", 1)[1] for p in s3.ls(f"{s3_bucket}/exports"))
    assert names == [
        "team-a-train.zip",
        "team-a-validation.zip",
        "team-a.report",
        "team-a.report.html",
        "team-a.report.json",
        "team-a.report.md",
        "team-a.zip",
    ]
    assert "contact-train.png" in [p.rsplit("/", 1)[1] for p in s3.ls(f"{s3_bucket}/exports/team-a.report")]
    s3.get_file(f"{s3_bucket}/exports/team-a.zip", str(tmp_path / "got.zip"))
    with zipfile.ZipFile(tmp_path / "got.zip") as archive:
        assert archive.testzip() is None and sum(n.startswith("images/") for n in archive.namelist()) == 9
    assert json.loads(s3.cat_file(f"{s3_bucket}/exports/team-a.report.json"))["status"] == "published"


def test_s3_folder_source_tar_and_memory_destination(official_dir, s3_bucket):
    s3 = fsspec.filesystem("s3")
    s3.put(str(official_dir), f"{s3_bucket}/release", recursive=True)
    s3.put_file(str(make_archive(official_dir, "tar.gz")), f"{s3_bucket}/release.tar.gz")
    for source in (f"s3://{s3_bucket}/release", f"s3://{s3_bucket}/release.tar.gz"):
        report = export_open_images(source=source, options=ExportOptions(dest="memory://exports", name="v7"))
        assert report["subsets"]["train"]["boxes"] == 12
        assert fsspec.filesystem("memory").exists("/exports/v7.zip")


def test_the_run_leaves_report_artifacts(cvat_dir, tmp_path):
    export_open_images(source=str(cvat_dir), options=ExportOptions(dest=str(tmp_path), name="Team B"))
    api = PREFECT_API_URL.value()
    found = (
        httpx.post(f"{api}/artifacts/latest/filter", json={"limit": 50, "sort": "CREATED_DESC"})
        .raise_for_status()
        .json()
    )
    artifacts = {a["key"]: a for a in found}
    assert "openimages-team-b-report" in artifacts and "openimages-team-b-counts" in artifacts
    assert "| train | 6 | 12 | 12 | 6 |" in artifacts["openimages-team-b-report"]["data"]
