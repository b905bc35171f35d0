"""Stages hand each other references to what they wrote, in a work area that may be any fsspec location: packaging
writes exactly the referenced files or nothing, and a local, memory:// or S3 work area publishes the same zip."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import fsspec
import pytest

from openimages_etl.cli import main
from openimages_etl.flows.stages import ExportJob
from openimages_etl.options import ExportOptions
from openimages_etl.storage.runlock import WORK_PREFIX, remove_leftovers, run_work_dir
from openimages_etl.tasks import convert as convert_tasks

from .helpers import zip_members

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.mark.parametrize("fault", ["deleted", pytest.param("truncated", marks=pytest.mark.slow)])
def test_a_shard_lost_after_its_task_returned_is_exit_4_and_nothing_is_published(
    fault, cvat_dir, tmp_path, monkeypatch, capsys
):
    convert = convert_tasks.convert_batch

    def losing_its_shard(*args, **kwargs):  # the fault only: the batch's shard goes, or is cut short, once it returned
        result = convert(*args, **kwargs)
        if result is not None and result.converted:
            path = Path(result.shard.url)
            path.unlink() if fault == "deleted" else path.write_bytes(path.read_bytes()[: result.shard.size // 2])
        return result

    monkeypatch.setattr(convert_tasks, "convert_batch", losing_its_shard)
    dest = tmp_path / "out"
    assert main(["export", str(cvat_dir), str(dest), "--name", "ds"]) == 4
    assert ("missing" if fault == "deleted" else "bytes, its task wrote") in capsys.readouterr().err
    assert not dest.exists() or list(dest.rglob("*")) == []


@pytest.fixture(scope="module")
def local_export(prefect_api, sample_dirs, tmp_path_factory) -> Path:
    """The folder of a local export, whose zips the other work areas must publish too: one run for the module."""
    dest = tmp_path_factory.mktemp("local")
    assert main(["export", str(sample_dirs["cvat"]), str(dest), "--name", "ds", "--per-subset"]) == 0
    return dest


def test_a_memory_work_area_publishes_the_same_zip_and_is_removed(local_export, cvat_dir, tmp_path):
    assert (
        main(
            [
                "export",
                str(cvat_dir),
                str(tmp_path / "out"),
                "--name",
                "ds",
                "--per-subset",
                "--work-dir",
                "memory://stage-refs/work",
            ]
        )
        == 0
    )
    assert list(zip_members(tmp_path / "out" / "ds.zip").items()) == list(
        zip_members(local_export / "ds.zip").items()
    )  # same members, order, bytes
    assert zip_members(tmp_path / "out" / "ds-train.zip") == zip_members(local_export / "ds-train.zip")
    assert fsspec.filesystem("memory").find("/stage-refs") == []


def test_an_s3_work_area_and_destination_publish_the_same_zip(local_export, cvat_dir, s3_bucket):
    dest, work = f"s3://{s3_bucket}/out", f"s3://{s3_bucket}/work"
    assert main(["export", str(cvat_dir), dest, "--name", "ds", "--per-subset", "--work-dir", work]) == 0
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    assert list(zip_members(f"{dest}/ds.zip").items()) == list(
        zip_members(local_export / "ds.zip").items()
    )  # streamed into a multipart upload
    assert sorted(p.rsplit("/", 1)[1] for p in fs.ls(dest)) == [
        "ds-train.zip",
        "ds-validation.zip",
        "ds.report",
        "ds.report.html",
        "ds.report.json",
        "ds.report.md",
        "ds.zip",
    ]
    assert not fs.exists(f"{s3_bucket}/work") or fs.find(f"{s3_bucket}/work") == []


def test_on_a_dask_scheduler_the_work_area_is_under_dest_and_a_killed_runs_is_removed_by_the_next():
    job = ExportJob.read("/data/ds.zip", ExportOptions(dest="memory://stage-refs-dest/out"), {})
    assert job.work_location(SimpleNamespace(address="tcp://scheduler:8786")) == (
        f"memory://stage-refs-dest/out/{WORK_PREFIX}/ds",
        job.dest_options,
    )
    assert job.work_location(SimpleNamespace(address=None)) == (None, {})  # a local cluster: a local temporary folder
    fs = fsspec.filesystem("memory")
    left = run_work_dir("memory://stage-refs-dest/out", "ds") + "/run-1/keys/images.parquet"
    fs.pipe(left.removeprefix("memory://"), b"x")
    fs.pipe("/stage-refs-dest/out/.ds.zip.part-0123abcd", b"half a zip")
    fs.pipe(f"/stage-refs-dest/out/{WORK_PREFIX}/other/run-2/x", b"another export's, running")
    assert len(remove_leftovers("memory://stage-refs-dest/out", "ds", {})) == 2
    assert fs.find("/stage-refs-dest") == [f"/stage-refs-dest/out/{WORK_PREFIX}/other/run-2/x"]
    fs.rm("/stage-refs-dest", recursive=True)
