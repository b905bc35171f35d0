"""One large CSV validated and partitioned as byte ranges, a task each, cut on line boundaries; their verdicts merged
with every line number as one pass over the whole file gives it.

A range holds the records that start in it (the Hadoop rule): it skips the partial line at its start and finishes
the line that crosses its end. Line numbers inside a range count from its first record; the merge adds the records
of the ranges before it, which each range counted. A newline inside a quoted field would break that rule, so each
range also counts its `"` bytes: every field closes where it opened as long as each range has an even number, and
when one does not (or a range cannot be parsed on its own) the file is validated whole, the exact path. The merged
verdict keeps the ranges with their records counted (`TableCheck.ranges`): partitioning cuts the same ranges, whose
line numbers are then the file's from the start, or takes the file whole when validation did.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import polars as pl

from openimages_etl.errors import Failure, UnreadableFileError
from openimages_etl.format.failures import FAILURE_COLUMNS, GROUP, FailureSummary
from openimages_etl.format.layout import ByteRange, CsvFile, Layout
from openimages_etl.format.tables import LINE
from openimages_etl.format.validation import Keys, TableCheck, validate_table
from openimages_etl.storage.locations import file_slug, member_path
from openimages_etl.storage.workarea import StoredFile, WorkArea, read_stored

MIN_RANGE_BYTES = 64 << 20  # below this a range costs more in tasks and copies than its second core gives
READ_CHUNK = 8 << 20


def byte_ranges(table: CsvFile, slots: int) -> list[tuple[int, int]]:
    """(start, end) of each range: one per slot, none under MIN_RANGE_BYTES; one range is the whole file."""
    parts = max(1, min(slots, table.size // MIN_RANGE_BYTES))
    return [(table.size * i // parts, table.size * (i + 1) // parts) for i in range(parts)]


def cut_range(table: CsvFile, start: int, end: int, folder: str, lines_before: int = 0) -> tuple[CsvFile, int]:
    """The records starting in [start, end) as a local CSV file of their own (with the header in the first range),
    read where the file is (a seek, a range request, or an archive member decompressed up to `start`); and how
    many `"` bytes they hold. Its line numbers count on from `lines_before`."""
    if table.local:
        raw = open(table.local, "rb")
    else:
        fs, base = table.root.open_fs()
        raw = fs.open(member_path(base, table.path), "rb")
    with (
        raw,
        tempfile.NamedTemporaryFile(
            "wb", dir=folder, prefix=f"{file_slug(table.path)}-{start}-", suffix=".csv", delete=False
        ) as out,
    ):
        quotes = 0
        for piece in _records(raw, start, end):
            out.write(piece)
            quotes += piece.count(b'"')
    return replace(
        table, local=out.name, header=table.header and start == 0, start=start, lines_before=lines_before
    ), quotes


@contextmanager
def range_file(table: CsvFile, start: int, end: int, lines_before: int = 0) -> Iterator[tuple[CsvFile, int]]:
    """`cut_range` into a temporary folder, removed when the block ends."""
    with tempfile.TemporaryDirectory(prefix="openimages-etl-range-") as folder:
        yield cut_range(table, start, end, folder, lines_before)


@contextmanager
def range_check(check: TableCheck, within: ByteRange | None) -> Iterator[TableCheck]:
    """`check` cut to the records of one of its ranges, line numbers the file's (the whole check when None)."""
    if within is None:
        yield check
        return
    with range_file(check.table, within.start, within.end, within.lines_before) as (part, _):
        yield replace(check, table=part, rows=within.rows, ranges=())


def _records(raw, start: int, end: int):
    """The bytes of the lines that start in [start, end), in pieces; reads forward only (archive members cannot
    seek back cheaply)."""
    pos, buffer = max(0, start - 1), b""
    raw.seek(pos)
    while start:  # the line that crosses `start` (or ends just before it) belongs to the range before
        buffer = raw.read(READ_CHUNK)
        cut = buffer.find(b"\n")
        if not buffer or cut >= 0:
            pos, buffer = pos + cut + 1, buffer[cut + 1 :]
            break
        pos += len(buffer)
    finishing = False
    while True:
        buffer = buffer or raw.read(READ_CHUNK)
        if not buffer:
            return
        if not finishing:
            if pos >= end:
                return
            if pos + len(buffer) < end:
                yield buffer
                pos, buffer = pos + len(buffer), b""
                continue
            finishing, look = True, end - 1 - pos  # the line that crosses `end` is this range's last
        else:
            look = 0
        cut = buffer.find(b"\n", look)
        if cut >= 0:
            yield buffer[: cut + 1]
            return
        yield buffer
        pos, buffer = pos + len(buffer), b""


def validate_range(
    layout: Layout, table: CsvFile, start: int, end: int, keys: Keys, work: WorkArea, keep: int
) -> TableCheck | None:
    """The verdict on the records starting in [start, end) of `table`, line numbers counted from the first; None when
    the range cannot be read on its own (a quoted field across an edge, a row polars refuses): see `merged_check`."""
    with range_file(table, start, end) as (part, quotes):
        if quotes % 2:
            return None
        try:
            check = validate_table(layout, part, keys, work, keep, part=f".{start}")
        except UnreadableFileError:
            return None
    return replace(check, table=table, ranges=(ByteRange(start, end, check.rows),))


def merged_check(
    layout: Layout, table: CsvFile, parts: list[TableCheck | None], keys: Keys, work: WorkArea, keep: int
) -> TableCheck:
    """The ranges' verdicts as one; the whole file validated in one pass when a range could not be read alone."""
    if any(part is None for part in parts):
        _remove_work_files([part for part in parts if part])
        return validate_table(layout, table, keys, work, keep)
    return merge_ranges(table, parts, work, keep)


def merge_ranges(table: CsvFile, parts: list[TableCheck], work: WorkArea, keep: int) -> TableCheck:
    """One TableCheck for the whole file from its ranges' (in order), every line number shifted to the file's."""
    offsets, before = [], 0
    for index, part in enumerate(parts):
        offsets.append(0 if index == 0 else before + (1 if table.header else 0))
        before += part.rows
    samples = pl.concat(
        [
            _shifted(
                pl.DataFrame([vars(f) for f in p.failures.samples], schema=FAILURE_COLUMNS, orient="row"), "row", offset
            )
            for p, offset in zip(parts, offsets)
        ]
    )
    counts = [c for p in parts for c in p.failures.counts]
    totals = pl.DataFrame(counts).group_by(GROUP, maintain_order=True).agg(pl.col("count").sum()) if counts else None
    summary = FailureSummary(
        total=sum(p.failures.total for p in parts),
        counts=[{**row} for row in totals.iter_rows(named=True)] if totals is not None else [],
        samples=[
            Failure(**row)
            for row in samples.group_by(GROUP, maintain_order=True)
            .head(keep)
            .select(FAILURE_COLUMNS.keys())
            .iter_rows(named=True)
        ]
        if samples.height
        else [],
    )
    out, stem = WorkArea.of(work).sub("checks"), file_slug(table.path)
    rejected = out.write_parquet(
        f"{stem}.rejected.parquet", _concat_shifted([p.rejected_lines for p in parts], offsets)
    )
    jobs = None
    if parts[0].mask_jobs:
        jobs = out.write_parquet(f"{stem}.maskjobs.parquet", _concat_shifted([p.mask_jobs for p in parts], offsets))
    _remove_work_files(parts)
    ranges = tuple(r._replace(lines_before=offset) for p, offset in zip(parts, offsets) for r in p.ranges)
    return TableCheck(table, before, summary, rejected, jobs, utf8=all(p.utf8 for p in parts), ranges=ranges)


def _remove_work_files(parts: list[TableCheck]) -> None:
    for part in parts:
        for ref in (part.rejected_lines, part.mask_jobs):
            if ref:
                fs, path = ref.open_fs()
                fs.rm(path)


def _shifted(frame: pl.DataFrame, column: str, offset: int) -> pl.DataFrame:
    return frame.with_columns(pl.col(column) + offset) if offset else frame


def _concat_shifted(refs: list[StoredFile], offsets: list[int]) -> pl.DataFrame:
    return pl.concat([_shifted(read_stored(ref), LINE, offset) for ref, offset in zip(refs, offsets)])
