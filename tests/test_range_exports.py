"""On a cluster, a large CSV is validated and partitioned as byte ranges, a task each (issue 13 §5): forced here on
the thread runner (three slots, ranges of any size), an export publishes the zip a whole-file partition publishes,
byte for byte, with rejected rows and a class selection; a range's part lost after its task returned is exit 4."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openimages_etl.cli import main
from openimages_etl.flows import export as export_flow
from openimages_etl.format import csvranges
from openimages_etl.tasks import convert as convert_tasks

from .helpers import zip_members
from .selection_data import make_dataset

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture
def ranges_forced(monkeypatch) -> list[tuple[str, int]]:
    """Every CSV goes as three byte ranges; returns the (file, start) of each partition task, as they run."""
    monkeypatch.setattr(export_flow, "worker_slots", lambda: 3)
    monkeypatch.setattr(csvranges, "MIN_RANGE_BYTES", 1)
    partition, seen = convert_tasks.partition_table, []

    def recorded(request):
        seen.append((request.check.table.path, request.check.table.start))
        return partition(request)

    monkeypatch.setattr(convert_tasks, "partition_table", recorded)
    return seen


def _export(source: Path, dest: Path, *flags: str) -> tuple[dict[str, bytes], dict]:
    assert main(["export", str(source), str(dest), "--name", "ds", *flags]) == 0
    report = json.loads((dest / "ds.report.json").read_text().replace(str(dest), "DEST"))
    return zip_members(dest / "ds.zip"), {k: report.get(k) for k in ("files", "subsets", "media", "selection")}


def _with_rejections(cvat_dir: Path) -> Path:
    image = sorted((cvat_dir / "images" / "train").iterdir())[0]
    image.write_bytes(image.read_bytes()[:200])  # truncated: rejected with its rows
    mask = sorted((cvat_dir / "masks" / "validation").iterdir())[0]
    mask.write_bytes(b"not a png")  # its segmentation row rejected
    return cvat_dir


CASES = {
    "rejected-rows": (_with_rejections, ["--on-invalid", "drop", "--per-subset"]),
    "per-class": (None, ["--classes", "Vehicle", "--per-class", "1"]),
    "merged-subclasses": (None, ["--classes", "Vehicle,Dog", "--merge-subclasses", "--only-matching"]),
}


# Two exports each: the fast loop keeps a deleted part (and test_csv_ranges the bytes of ranged partitions); CI runs
# every case.
@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_ranges_publish_the_zip_of_a_whole_file_partition(case, cvat_dir, tmp_path, request):
    prepare, flags = CASES[case]
    source = prepare(cvat_dir) if prepare else make_dataset(tmp_path / "selection")
    whole = _export(source, tmp_path / "whole", *flags)
    seen = request.getfixturevalue("ranges_forced")
    ranged = _export(source, tmp_path / "ranged", *flags)
    assert list(ranged[0].items()) == list(whole[0].items())  # same members, order and bytes
    assert ranged[1] == whole[1]  # the same accounting, per file, and selection
    if prepare:
        assert (tmp_path / "ranged" / "ds-train.zip").read_bytes() != b""
        assert zip_members(tmp_path / "ranged" / "ds-train.zip") == zip_members(tmp_path / "whole" / "ds-train.zip")
    starts = {}
    for path, start in seen:
        starts.setdefault(path, []).append(start)
    assert sum(len(s) == 3 for s in starts.values()) >= 3, starts  # those CSVs went as three ranges each
    if case == "merged-subclasses":  # one label per image and class once merged: the labels CSVs go whole
        assert all(s == [0] for path, s in starts.items() if "imagelabels" in path), starts


@pytest.mark.parametrize("fault", ["deleted", pytest.param("truncated", marks=pytest.mark.slow)])
def test_a_range_part_lost_after_its_task_returned_is_exit_4_and_nothing_is_published(
    fault, ranges_forced, cvat_dir, tmp_path, monkeypatch, capsys
):
    partition = convert_tasks.partition_table

    def losing_a_part(request):  # the fault only: a later range's part goes, or is cut short
        result = partition(request)
        if request.check.table.start and result.parts:
            path = Path(result.parts[0].file.url)
            path.unlink() if fault == "deleted" else path.write_bytes(path.read_bytes()[:-2])
        return result

    monkeypatch.setattr(convert_tasks, "partition_table", losing_a_part)
    dest = tmp_path / "out"
    assert main(["export", str(cvat_dir), str(dest), "--name", "ds"]) == 4
    assert ("missing" if fault == "deleted" else "bytes, its task wrote") in capsys.readouterr().err
    assert any(start for _, start in ranges_forced)
    assert not dest.exists() or list(dest.rglob("*")) == []
