"""A large CSV validated and partitioned as byte ranges gives what one pass over the whole file gives: rows, every
failure on its exact line, the rejected lines, the same bytes in each output CSV; a quoted field across a range's edge
sends the file back to one pass (issue 13 §5)."""

from __future__ import annotations

import io
import random

import polars as pl
import pytest

from openimages_etl.errors import UnreadableFileError
from openimages_etl.format import csvranges as csvranges
from openimages_etl.format.csvranges import _records, byte_ranges, merged_check, range_check, validate_range
from openimages_etl.format.layout import discover
from openimages_etl.format.tables import LINE
from openimages_etl.format.validation import build_keys, validate_table
from openimages_etl.output.partition import (
    PartitionRequest,
    Rejected,
    merge_partitions,
    output_columns,
    partition_ranges,
    partition_table,
)
from openimages_etl.storage.locations import DatasetRoot
from openimages_etl.storage.workarea import WorkArea

BOXES = "validation-annotations-bbox.csv"


def test_ranges_hold_every_line_once():
    rng = random.Random(1)
    for _ in range(300):
        data = b"".join(b"x" * rng.randint(0, 30) + b"\n" for _ in range(rng.randint(0, 40))) + rng.choice(
            [b"", b"tail"]
        )
        bounds = [0, *sorted(rng.randint(0, len(data)) for _ in range(rng.randint(0, 5))), len(data)]
        assert b"".join(b"".join(_records(io.BytesIO(data), a, b)) for a, b in zip(bounds, bounds[1:])) == data


def _grow(path, copies: int, bad_every: int, quoted: bool) -> None:
    """The boxes CSV repeated, some rows broken (a box outside the image, a label nobody defined)."""
    header, *rows = path.read_text().splitlines()
    lines = [header]
    for n in range(copies):
        for row in rows:
            cells = row.split(",")
            if n % bad_every == 1:
                cells[2] = "/m/nobody"
            if n % bad_every == 2:
                cells[4] = "1.5"
            lines.append(",".join(cells))
    if quoted:  # a field with newlines inside, in the middle of the file, longer than a fifth of it: across an edge
        cells = lines[len(lines) // 2].split(",")
        cells[1] = '"human\n' + "verified\n" * (len("\n".join(lines)) // 30) + '"'
        lines[len(lines) // 2] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("quoted", [False, True], ids=["plain", "quoted-newline"])
def test_ranges_merge_to_the_verdict_of_one_pass(official_dir, tmp_path, monkeypatch, quoted):
    _grow(official_dir / BOXES, 100, 7, quoted)
    layout = discover(DatasetRoot(str(official_dir)), tmp_path / "index")
    keys = build_keys(layout, tmp_path)
    (table,) = [t for t in layout.tables if t.path == BOXES]
    whole = validate_table(layout, table, keys, tmp_path / "whole", keep=10_000)
    monkeypatch.setattr(csvranges, "MIN_RANGE_BYTES", 1)
    ranges = byte_ranges(table, 5)
    assert len(ranges) == 5
    parts = [validate_range(layout, table, a, b, keys, tmp_path / "ranges", 10_000) for a, b in ranges]
    assert (None in parts) == quoted
    merged = merged_check(layout, table, parts, keys, tmp_path / "ranges", 10_000)
    assert whole.failures.total > 20 and merged.rows == whole.rows
    assert sorted(map(repr, merged.failures.samples)) == sorted(map(repr, whole.failures.samples))
    assert sorted(merged.failures.counts, key=repr) == sorted(whole.failures.counts, key=repr)
    assert (
        pl.read_parquet(merged.rejected_lines.url).get_column(LINE).sort().to_list()
        == pl.read_parquet(whole.rejected_lines.url).get_column(LINE).sort().to_list()
    )
    assert sorted(p.name for p in (tmp_path / "ranges" / "checks").iterdir()) == [f"{BOXES}.rejected.parquet"]


def _ranged(official_dir, tmp_path, monkeypatch, quoted: bool):
    """The grown boxes CSV, its layout and keys, and its verdicts from one pass and from 5 ranges merged."""
    _grow(official_dir / BOXES, 100, 7, quoted)
    layout = discover(DatasetRoot(str(official_dir)), tmp_path / "index")
    keys = build_keys(layout, tmp_path)
    (table,) = [t for t in layout.tables if t.path == BOXES]
    whole = validate_table(layout, table, keys, tmp_path / "whole")
    monkeypatch.setattr(csvranges, "MIN_RANGE_BYTES", 1)
    parts = [validate_range(layout, table, a, b, keys, tmp_path / "ranges", 10) for a, b in byte_ranges(table, 5)]
    return layout, keys, whole, merged_check(layout, table, parts, keys, tmp_path / "ranges", 10)


@pytest.mark.parametrize("quoted", [False, True], ids=["plain", "quoted-newline"])
def test_ranges_partition_to_the_bytes_of_one_pass(official_dir, tmp_path, monkeypatch, quoted):
    layout, keys, whole, merged = _ranged(official_dir, tmp_path, monkeypatch, quoted)
    assert partition_ranges(whole, None) == ()  # one slot (threads, one worker): validated whole, partitioned whole
    ranges = partition_ranges(merged, None)
    assert len(ranges) == (0 if quoted else 5)  # a quoted field across an edge: the file whole, as validation did
    assert [r.rows for r in ranges] == ([] if quoted else [r.rows for r in merged.ranges])
    some_ids = pl.read_csv(official_dir / BOXES).get_column("ImageID").unique().sort().head(1)
    rejected = Rejected(images=(WorkArea.of(tmp_path).write_parquet("rejected-images.parquet", some_ids.to_frame()),))
    columns = output_columns(layout.of_kind("boxes"))

    def partition(check, out, within=None):
        with range_check(check, within) as part:
            return partition_table(
                PartitionRequest(part, keys, None, columns, WorkArea.of(tmp_path / out), rejected=rejected)
            )

    one = partition(whole, "one")
    split = merge_partitions(merged, [partition(merged, "split", r) for r in ranges]) if ranges else one
    assert one.rejected > whole.rejected_lines.count and sum(one.published.values()) > 100  # rows and an image out
    assert (split.rows_in, split.published, split.rejected, split.not_selected) == (
        one.rows_in,
        one.published,
        one.rejected,
        one.not_selected,
    )
    assert [p.start for p in split.parts] == sorted(p.start for p in split.parts)
    for output in {p.output for p in one.parts}:
        pieces = [p.file for p in split.parts if p.output == output]
        assert len(pieces) == (1 if quoted else 5)
        assert (
            b"".join(open(f.url, "rb").read() for f in pieces)
            == open(next(p.file.url for p in one.parts if p.output == output), "rb").read()
        )
        assert sum(f.count for f in pieces) == one.published[output.split("-")[0]]


def test_a_range_that_does_not_read_at_partition_is_named_by_its_line_in_the_file(official_dir, tmp_path, monkeypatch):
    layout, keys, _, merged = _ranged(official_dir, tmp_path, monkeypatch, False)
    third = merged.ranges[2]
    data = (official_dir / BOXES).read_bytes()
    line_start = data.index(b"\n", third.start - 1) + 1  # the first record of the third range
    broken = data[:line_start] + b'"' + data[line_start + 1 :]  # same length: the ranges stay where they were
    (official_dir / BOXES).write_bytes(broken)
    expected = data[:line_start].count(b"\n") + 1
    assert third.lines_before + 1 == expected > 200
    with pytest.raises(UnreadableFileError) as raised, range_check(merged, third) as part:
        partition_table(
            PartitionRequest(part, keys, None, output_columns(layout.of_kind("boxes")), WorkArea.of(tmp_path / "out"))
        )
    assert raised.value.file == BOXES and raised.value.row == expected
