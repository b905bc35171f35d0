"""Stream an Open Images CSV in batches, type it by its pandera model and collect every failing value.

Reading uses polars' streaming engine (both cores) on a local file (`csvcopy.local_csv`). Typed batches come
from an optimistic pass that parses numbers while reading; when a value does not parse, the file is read
again as strings and cast column by column, so that each such value is reported with its line. A byte that
is not UTF-8 also stops the optimistic pass; the exact one reads it as U+FFFD and reports it as its cell's
failure (`NotUtf8`): one bad byte is one bad row.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pandera.polars as pa
import polars as pl

from openimages_etl.config import CSV_BATCH_BYTES
from openimages_etl.errors import UnreadableFileError
from openimages_etl.format.csvcopy import local_csv
from openimages_etl.schemas.kinds import TABLES, TableKind

if TYPE_CHECKING:
    from openimages_etl.format.layout import CsvFile

FAILURE_SCHEMA = {"row": pl.Int64, "column": pl.String, "check": pl.String, "value": pl.String}
# One streaming pass over a CSV at a time per process: polars already spreads one over every core, and
# each pass holds ~200 MB of read buffers whatever the batch size (validating and partitioning side by side
# took a 2.5 M-row export's peak to 1.2 GB).
CSV_PASSES = threading.Semaphore(1)
LINE = "__line"  # 1-based line number in the file, carried with every batch
MAX_FIELD_BYTES = 1 << 17  # no Open Images field comes near: larger is a broken quote or a hostile file
NOT_UTF8 = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, as surrogateescape decodes them
REPLACED = "\ufffd"  # what reading with "utf8-lossy" puts in place of each byte that is not UTF-8
NOT_UTF8_CHECK = "is UTF-8 text"
RAW_CHUNK = 16 << 20


class UnparsedValue(Exception):
    """The optimistic typed read met a value that is not a number, or bytes that are not UTF-8: read the file
    again as strings."""


def scan(table: CsvFile, dtypes: dict[str, pl.DataType] | None = None, strict_utf8: bool = False) -> pl.LazyFrame:
    """The CSV as a lazy frame of strings (or of `dtypes` where given), with its `__line` column. Bytes that are not
    UTF-8 read as U+FFFD, or fail the read with `strict_utf8`."""
    schema = {c: (dtypes or {}).get(c, pl.String) for c in table.columns}
    encoding = "utf8" if strict_utf8 else "utf8-lossy"
    return (
        pl.scan_csv(local_csv(table), has_header=table.header, schema=schema, raise_if_empty=False, encoding=encoding)
        .with_row_index(LINE, offset=(2 if table.header else 1) + table.lines_before)
        .with_columns(pl.col(LINE).cast(pl.Int64))
    )


def iter_batches(table: CsvFile, keep: list[str] | None = None) -> Iterator[pl.DataFrame]:
    """Yield the CSV as string frames with a `__line` column; only the `keep` columns when given."""
    frame = scan(table)
    if keep is not None:
        frame = frame.select([c for c in keep if c in table.columns] + [LINE])
    try:
        yield from frame.collect_batches(chunk_size=batch_rows(table))
    except pl.exceptions.PolarsError as exc:
        raise unreadable(table, exc) from exc


def unreadable(table: CsvFile, exc: Exception) -> UnreadableFileError:
    """What to raise when polars cannot parse the CSV: the first bad row, found by a slow re-read."""
    found = locate_problem(local_csv(table), len(table.columns))
    if found is None:  # Python's csv module is more lenient than polars: take the line at polars' byte offset
        offset = re.search(r"offset in the file is (\d+) bytes", str(exc))
        with open(local_csv(table), "rb") as handle:
            row = handle.read(int(offset.group(1))).count(b"\n") + 1 if offset else 1
        found = row, f"malformed CSV ({str(exc).splitlines()[0][:200]})"
    return UnreadableFileError(table.path, found[0] + table.lines_before, found[1])  # the file's line, for a range


def read_columns(table: CsvFile, columns: list[str]) -> pl.DataFrame:
    """Whole columns of a CSV (key tables), as strings, with `__line`."""
    batches = list(iter_batches(table, keep=columns))
    return (
        pl.concat(batches)
        if batches
        else pl.DataFrame(schema={**{c: pl.String for c in columns if c in table.columns}, LINE: pl.Int64})
    )


def typed_batches(table: CsvFile, kind: TableKind) -> Iterator[pl.DataFrame]:
    """Typed batches, numbers parsed while reading; raises UnparsedValue on a value that is not one, or on bytes that
    are not UTF-8 (strict here, so that valid files pay nothing for finding them)."""
    model = TABLES[kind].model.to_schema().columns
    numbers = {
        name: column.dtype.type
        for name, column in model.items()
        if name in table.columns and column.dtype.type != pl.String
    }
    nullable = [name for name in numbers if model[name].nullable and numbers[name] == pl.Float64]
    lazy = scan(table, numbers, strict_utf8=True).with_columns(
        [pl.col(c).fill_nan(None) for c in nullable]
    )  # "nan" means "not given"
    try:
        yield from lazy.collect_batches(chunk_size=batch_rows(table))
    except pl.exceptions.PolarsError as exc:
        raise UnparsedValue(str(exc).splitlines()[0]) from exc


def line_bytes(table: CsvFile, sample: int = 1 << 20) -> float:
    """Average bytes per line of the CSV, from its first `sample` bytes."""
    with open(local_csv(table), "rb") as handle:
        head = handle.read(sample)
    return max(1, len(head)) / max(1, head.count(b"\n"))  # an empty file still gets a positive size


def batch_rows(table: CsvFile) -> int:
    """Rows per batch: about CSV_BATCH_BYTES of the file's text."""
    return max(1, int(CSV_BATCH_BYTES / line_bytes(table)))


def rows_estimate(table: CsvFile, sample: int = 1 << 20) -> int:
    """About how many rows the CSV has, from its size and its first lines (for progress)."""
    return max(0, round(Path(local_csv(table)).stat().st_size / line_bytes(table, sample)) - (1 if table.header else 0))


def locate_problem(path: str, width: int, max_field: int = MAX_FIELD_BYTES) -> tuple[int, str] | None:
    """The first record (row, header = 1) that the fast reader refused, and why: only run once a read failed."""
    csv.field_size_limit(max(csv.field_size_limit(), max_field))
    with open(path, "rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
        records = csv.reader(text)
        row = 0
        try:
            for row, fields in enumerate(records, start=1):
                if len(fields) != width:
                    return row, f"has {len(fields)} fields, expected {width}"
                if max(map(len, fields), default=0) >= max_field:
                    return row, f"a field is larger than {max_field} bytes"
        except csv.Error as exc:
            return row + 1, f"malformed CSV ({exc})"
    return None


def typed(frame: pl.DataFrame, kind: TableKind) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cast string columns to the model's dtypes; values that do not parse become failures (and null).
    The exact path, slower than `typed_batches`."""
    columns = TABLES[kind].model.to_schema().columns
    casts, failures = [], []
    for name, column in columns.items():
        if name not in frame.columns or column.dtype.type == pl.String:
            continue
        target = column.dtype.type
        number = pl.col(name).str.strip_chars().cast(pl.Float64, strict=False)  # the CSV reader also allows spaces
        if target != pl.Float64:
            parsed = pl.when(number == number.round()).then(number).otherwise(None).cast(target, strict=False)
        else:
            parsed = number.fill_nan(None) if column.nullable else number  # "nan" in an optional column: not given
        casts.append(parsed.alias(name))
        unparsed = number.is_null() if target == pl.Float64 else parsed.is_null()
        failures.append(
            frame.lazy()
            .filter(pl.col(name).is_not_null() & unparsed)
            .select(
                pl.col(LINE).alias("row"),
                pl.lit(name).alias("column"),
                pl.lit(f"is {'a number' if target == pl.Float64 else 'an integer'}").alias("check"),
                pl.col(name).alias("value"),
            )
        )
    parse_failures = pl.concat(pl.collect_all(failures)) if failures else pl.DataFrame(schema=FAILURE_SCHEMA)
    return frame.with_columns(casts), parse_failures


def check_batch(frame: pl.DataFrame, kind: TableKind) -> pl.DataFrame:
    """All of the model's failures in a typed batch, as rows `row, column, check, value`."""
    try:
        TABLES[kind].model.to_schema().validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        index = cases.get_column("index")
        lines = frame.get_column(LINE).gather(index.fill_null(0).cast(pl.Int64))
        return cases.select(
            pl.when(pl.col("index").is_not_null()).then(lines).cast(pl.Int64).alias("row"),
            pl.when(pl.col("schema_context") == "Column").then(pl.col("column")).alias("column"),
            pl.col("check"),
            # a check on the whole row shows the row without its line number: that is `row`, counted from where
            # the read began
            pl.col("failure_case")
            .cast(pl.String)
            .str.replace(f'^\\{{"{LINE}":\\d+,', "{")
            .str.slice(0, 200)
            .alias("value"),
        )
    return pl.DataFrame(schema=FAILURE_SCHEMA)


class NotUtf8:
    """Finds the cells of a CSV whose bytes were not UTF-8: in its lossy read they hold U+FFFD, as do cells where the
    file itself has U+FFFD (valid text). One pass over the raw bytes decides for the whole file, at its first batch:
    a valid file needs no search; in one with bytes that are not UTF-8, each U+FFFD is one, unless the file also
    has U+FFFD of its own, and only then is it read record by record. (Valid files seldom get here: see
    `typed_batches`.)"""

    def __init__(self, table: CsvFile):
        self.table = table
        self._verdict: bool | pl.DataFrame | None = (
            None  # False: valid; True: every U+FFFD was a bad byte; else the cells
        )

    @property
    def found(self) -> bool:
        """Whether the file has bytes that are not UTF-8, as far as `failures` has had to find out."""
        return self._verdict is not None and self._verdict is not False

    def failures(self, frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
        """`row, column, check, value` for each cell of `frame`'s string `columns` that held bytes that are
        not UTF-8."""
        if self._verdict is None:
            self._verdict = self._decide()
        if self._verdict is False or not columns:
            return pl.DataFrame(schema=FAILURE_SCHEMA)
        cells = pl.concat(
            pl.collect_all(
                [
                    frame.lazy()
                    .filter(pl.col(c).str.contains(REPLACED, literal=True))
                    .select(
                        pl.col(LINE).alias("row"),
                        pl.lit(c).alias("column"),
                        pl.lit(NOT_UTF8_CHECK).alias("check"),
                        pl.col(c).str.slice(0, 200).alias("value"),
                    )
                    for c in columns
                ]
            )
        )
        return cells if self._verdict is True else cells.join(self._verdict, on=["row", "column"], how="semi")

    def _decide(self) -> bool | pl.DataFrame:
        invalid, written = _raw_text(local_csv(self.table))
        return _cells_not_utf8(self.table) if invalid and written else invalid


def _raw_text(path: str) -> tuple[bool, bool]:
    """Whether the file has bytes that are not UTF-8, and whether it has U+FFFD of its own: one pass over its bytes."""
    decoder, encoded = codecs.getincrementaldecoder("utf-8")(), REPLACED.encode()
    invalid = written = False
    tail = b""
    with open(path, "rb") as raw:
        while not (invalid and written):
            chunk = raw.read(RAW_CHUNK)
            written = written or encoded in tail + chunk
            tail = chunk[-2:]
            if not invalid:
                try:
                    decoder.decode(chunk, final=not chunk)  # at the end: a sequence the file cut off
                except UnicodeDecodeError:
                    invalid = True
            if not chunk:
                break
    return invalid, written


def _cells_not_utf8(table: CsvFile) -> pl.DataFrame:
    """`row, column` of every cell with bytes that are not UTF-8, record by record (slow: only for files that also
    hold U+FFFD of their own, where the lossy read cannot tell the two apart)."""
    csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD_BYTES))
    cells = []
    with open(local_csv(table), "rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
        for row, fields in enumerate(csv.reader(text), start=1):  # the header, when there is one, is line 1
            cells.extend(
                (row, table.columns[i])
                for i, field in enumerate(fields[: len(table.columns)])
                if NOT_UTF8.search(field)
            )
    return pl.DataFrame(cells, schema={"row": pl.Int64, "column": pl.String}, orient="row")
