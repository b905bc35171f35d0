"""A large CSV validated as byte ranges gives the verdict of one pass over the whole file: rows, every failure on its
exact line, the rejected lines; a quoted field across a range's edge sends the file back to one pass (issue 13 §5)."""

from __future__ import annotations

import io
import random

import polars as pl
import pytest

from openimages_etl.format import csvranges as csvranges
from openimages_etl.format.csvranges import _records, byte_ranges, merged_check, validate_range
from openimages_etl.format.layout import discover
from openimages_etl.format.tables import LINE
from openimages_etl.format.validation import build_keys, validate_table
from openimages_etl.storage.locations import DatasetRoot

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
