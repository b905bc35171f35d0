"""Workers read the source where it is: a remote zip by range reads, a tar staged once into the work area (any
fsspec URL), each CSV copied only by the process that scans it, for as long as it does (issue 13 §3)."""

from __future__ import annotations

import os
from pathlib import Path

import fsspec
import pytest

from openimages_etl.format.csvcopy import csv_copies, local_csv
from openimages_etl.format.layout import discover
from openimages_etl.format.validation import build_keys, validate_table
from openimages_etl.storage.locations import stage_source

from .helpers import make_archive


def _verdicts(root, work: Path) -> dict[str, tuple[int, int]]:
    with csv_copies():
        layout = discover(root, work / "index")
        keys = build_keys(layout, work)
        return {
            t.path: (c.rows, c.failures.total) for t in layout.tables for c in [validate_table(layout, t, keys, work)]
        }


def test_a_remote_zip_is_read_in_place_and_validates_as_the_folder(cvat_dir, s3_bucket, tmp_path):
    fsspec.filesystem("s3").put_file(str(make_archive(cvat_dir, "zip")), f"{s3_bucket}/up/team.zip")
    work = tmp_path / "work"
    root = stage_source(f"s3://{s3_bucket}/up/team.zip", {}, work)
    assert root.url == f"zip://::s3://{s3_bucket}/up/team.zip"
    assert not work.exists()  # nothing downloaded
    assert _verdicts(root, tmp_path / "a") == _verdicts(stage_source(str(cvat_dir), {}, work), tmp_path / "b")


@pytest.mark.parametrize("work_dir", ["memory://work/run-1", "s3"])
def test_a_tar_is_repacked_once_into_a_remote_work_area(official_dir, s3_bucket, tmp_path, work_dir):
    s3 = fsspec.filesystem("s3")
    s3.put_file(str(make_archive(official_dir, "tar.gz")), f"{s3_bucket}/release.tar.gz")
    work_dir = f"s3://{s3_bucket}/work/run-1" if work_dir == "s3" else work_dir
    root = stage_source(f"s3://{s3_bucket}/release.tar.gz", {}, work_dir)
    assert root.url == f"zip://::{work_dir}/source.zip"
    fs, base = root.open_fs()
    expected = sorted(p.relative_to(official_dir).as_posix() for p in official_dir.rglob("*") if p.is_file())
    assert sorted(fs.find(base)) == expected
    assert _verdicts(root, tmp_path / "a") == _verdicts(stage_source(str(official_dir), {}, tmp_path), tmp_path / "b")


def test_csv_copies_last_as_long_as_their_scope(cvat_dir, tmp_path):
    layout = discover(stage_source(str(make_archive(cvat_dir, "zip")), {}, tmp_path), tmp_path / "index")
    table = layout.tables[0]
    with csv_copies():
        with csv_copies():  # a task inside the flow's scope, in the same process
            copy = local_csv(table)
        assert local_csv(table) == copy and os.path.exists(copy)
    assert not os.path.exists(copy)
