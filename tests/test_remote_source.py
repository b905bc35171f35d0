"""Workers read the source where it is: a remote zip by range reads, a tar staged once into the work area (any
fsspec URL), each CSV copied only by the process that scans it, for as long as it does (issue 13 §3)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import fsspec
import pytest

from openimages_etl.format.csvcopy import csv_copies, local_csv
from openimages_etl.format.layout import discover
from openimages_etl.format.validation import build_keys, validate_table
from openimages_etl.storage.locations import READ_AHEAD, WRITE_PART, read_member, stage_source, zip_root
from openimages_etl.storage.workarea import WorkArea

from .faultproxy import FaultProxy
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


def test_remote_files_are_read_and_written_with_bounded_buffers(s3_bucket, s3_endpoint, tmp_path):
    """Issue 13: fsspec's 50 MB buffers per open file made a flow's RSS about the archive's size. A member of a remote
    zip costs its bytes plus READ_AHEAD, wherever it sits; a work-area file goes up in parts of WRITE_PART."""
    members = {f"images/train/{n:02d}.jpg": os.urandom(1 << 20) for n in range(24)}
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as out:
        for name, data in members.items():
            out.writestr(name, data)
    fsspec.filesystem("s3").put_file(str(archive), f"{s3_bucket}/big.zip")
    proxy = FaultProxy(s3_endpoint)
    through = {"client_kwargs": {"endpoint_url": proxy.start()}, "skip_instance_cache": True}
    try:
        fs, _ = zip_root(f"s3://{s3_bucket}/big.zip", through).open_fs()
        opened = proxy.served  # the central directory, read from the end
        for name in ("images/train/20.jpg", "images/train/03.jpg"):  # forwards, then a jump back
            assert read_member(fs, name, name) == members[name]
        assert proxy.served - opened <= 2 * ((1 << 20) + READ_AHEAD + (64 << 10))
        with WorkArea(f"s3://{s3_bucket}/work", through).create("shard.zip") as handle:
            for data in members.values():
                handle.write(data)
        assert 0 < proxy.largest_upload <= WRITE_PART + (1 << 20)
        assert fsspec.filesystem("s3").size(f"{s3_bucket}/work/shard.zip") == 24 << 20
    finally:
        proxy.stop()
