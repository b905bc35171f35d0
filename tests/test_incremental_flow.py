"""The incremental flow on a real Prefect API: what is new since the last run, and only that, gets exported."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest
from prefect.states import Completed, Failed

from openimages_etl.errors import InvalidDataError, OpenImagesETLError, PublishError, SourceError
from openimages_etl.flows import export_new_archives, export_open_images
from openimages_etl.flows.incremental import _outcome, summarise
from openimages_etl.options import ExportOptions, SelectionSpec
from openimages_etl.storage.objects import LEDGER_DIR

from .helpers import make_archive

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.mark.slow  # five exports; the fast loop keeps the other tests of the incremental flow
def test_each_run_exports_only_archives_new_since_the_last(cvat_dir, official_dir, tmp_path):
    incoming, dest = tmp_path / "incoming", str(tmp_path / "exports")
    (incoming / "2026").mkdir(parents=True)
    make_archive(cvat_dir, "zip").rename(incoming / "a.zip")
    make_archive(official_dir, "tar").rename(incoming / "2026" / "b.tar")
    (incoming / "notes.txt").write_text("not an archive")

    first = export_new_archives(source=str(incoming), options=ExportOptions(dest=dest))
    assert sorted((o["archive"].rsplit("/", 1)[1], o["status"]) for o in first) == [
        ("a.zip", "published"),
        ("b.tar", "published"),
    ]
    assert {p.name for p in (tmp_path / "exports").glob("*.zip")} == {"a.zip", "b.zip"}
    assert export_new_archives(source=str(incoming), options=ExportOptions(dest=dest)) == []  # nothing new

    with zipfile.ZipFile(incoming / "a.zip", "a") as archive:  # a new version of a.zip: new size and mtime
        archive.writestr("README.txt", "second upload")
    os.utime(incoming / "a.zip", (1e9, 2e9))
    outcomes = export_new_archives(source=str(incoming), options=ExportOptions(dest=dest))
    assert [o["archive"].rsplit("/", 1)[1] for o in outcomes] == ["a.zip"]
    assert _entries(dest) == 3


@pytest.mark.slow  # two flow runs
def test_a_copy_of_an_exported_archive_with_a_new_mtime_is_not_exported_again(cvat_dir, tmp_path, caplog):
    incoming, dest = tmp_path / "incoming", str(tmp_path / "exports")
    incoming.mkdir()
    archive = make_archive(cvat_dir, "zip").rename(incoming / "a.zip")
    options = ExportOptions(dest=dest)
    assert [o["status"] for o in export_new_archives(source=str(incoming), options=options)] == ["published"]
    published = (tmp_path / "exports" / "a.zip").stat().st_mtime_ns
    shutil.copyfile(archive, tmp_path / "a.zip")  # what `cp` does: same bytes, a new mtime
    os.replace(tmp_path / "a.zip", archive)
    os.utime(archive, (2e9, 2e9))
    assert export_new_archives(source=str(incoming), options=ExportOptions(dest=dest)) == []
    assert _entries(dest) == 1 and (tmp_path / "exports" / "a.zip").stat().st_mtime_ns == published
    assert "same bytes as an exported version" in caplog.text


def _entries(dest: str) -> int:
    return len(list((Path(dest) / LEDGER_DIR).iterdir()))


def test_an_invalid_archive_fails_the_run_once_and_is_not_retried(cvat_dir, tmp_path):
    incoming, dest = tmp_path / "incoming", str(tmp_path / "exports")
    incoming.mkdir()
    with (cvat_dir / "annotations" / "train-annotations-bbox.csv").open("a") as boxes:
        boxes.write("00000000deadbeef,xclick,/m/01g317,1,0.1,0.2,0.1,0.2,0,0,0,0,0\n")  # an image no list holds
    make_archive(cvat_dir, "zip").rename(incoming / "invalid.zip")
    with pytest.raises(OpenImagesETLError, match="1 archive new since the last run: 1 rejected: .*InvalidDataError"):
        export_new_archives(source=str(incoming), options=ExportOptions(dest=dest))
    assert _entries(dest) == 1  # rejected for this version: the archive itself is at fault
    assert export_new_archives(source=str(incoming / "invalid.zip"), options=ExportOptions(dest=dest)) == []


@pytest.mark.parametrize(
    "state, status",
    [
        (Completed(data={"status": "published", "output": "s3://b/out/x.zip"}), "published"),
        (Failed(data=InvalidDataError("2 failures")), "rejected"),
        (Failed(data=SourceError("not a readable zip archive")), "rejected"),
        (Completed(data={"status": "unchanged", "output": "s3://b/out/x.zip"}), "unchanged"),
        (Failed(data=PublishError("cannot publish")), "failed"),  # the destination's fault: try again next run
        (Failed(data=RuntimeError("a bug")), "failed"),
    ],
)
def test_which_outcomes_are_final(state, status):
    assert _outcome(state)["status"] == status


@pytest.mark.slow  # two flow runs
def test_a_child_that_finds_its_export_in_place_is_reported_unchanged(cvat_dir, tmp_path, caplog):
    incoming, dest = tmp_path / "incoming", str(tmp_path / "exports")
    incoming.mkdir()
    archive = make_archive(cvat_dir, "zip").rename(incoming / "a.zip")
    options = ExportOptions(dest=dest)
    export_open_images(source=str(archive), options=options)  # exported by hand, so the ledger does not know it
    [outcome] = export_new_archives(source=str(incoming), options=ExportOptions(dest=dest))
    assert outcome["status"] == "unchanged"
    assert (
        "1 archive new since the last run: 1 unchanged" in caplog.text
        and "published" not in caplog.text.split("new since")[-1]
    )


def test_each_child_export_takes_every_option_of_the_run(cvat_dir, tmp_path):
    incoming, dest = tmp_path / "incoming", tmp_path / "exports"
    incoming.mkdir()
    make_archive(cvat_dir, "zip").rename(incoming / "a.zip")
    options = ExportOptions(
        dest=str(dest),
        image_size="300k",
        subsets=["validation"],
        per_subset=True,
        selection=SelectionSpec(max_images=1),
    )
    [outcome] = export_new_archives(source=str(incoming), options=options)
    report = json.loads((dest / "a.report.json").read_text())
    assert outcome["status"] == "published" and (dest / "a-validation.zip").exists()
    assert (report["image_size"], list(report["subsets"])) == ("300k", ["validation"])
    assert report["selection"]["parameters"]["max_images"] == 1


@pytest.mark.parametrize(
    "statuses, text",
    [
        ([], "0 archives new since the last run"),
        (["published"], "1 archive new since the last run: 1 published"),
        (
            ["failed", "unchanged", "published", "unchanged", "rejected"],
            "5 archives new since the last run: 1 published, 2 unchanged, 1 rejected, 1 failed",
        ),
    ],
)
def test_the_summary_counts_what_the_children_did(statuses, text):
    assert summarise([{"status": s} for s in statuses]) == text
