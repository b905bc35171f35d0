"""Stream an Open Images CSV in batches, type it by its pandera model and collect every failing value."""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

import pandera.polars as pa
import polars as pl
import pyarrow as pa_arrow
import pyarrow.csv as pacsv

from openimages_etl.schemas.tables import (
    BoxSchema,
    ClassDescriptionSchema,
    ImageLabelSchema,
    ImageListSchema,
    SegmentationSchema,
)

from .config import CSV_BATCH_BYTES
from .errors import SourceError, UnreadableFileError
from .storage import ARCHIVE_READ_ERRORS

SCHEMAS: dict[str, type[pa.DataFrameModel]] = {
    "classes": ClassDescriptionSchema,
    "images": ImageListSchema,
    "boxes": BoxSchema,
    "labels": ImageLabelSchema,
    "masks": SegmentationSchema,
}
FAILURE_SCHEMA = {"row": pl.Int64, "column": pl.String, "check": pl.String, "value": pl.String}
LINE = "__line"  # 1-based line number in the file, carried with every batch
NOT_UTF8 = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, as surrogateescape decodes them


def iter_batches(fs, path: str, columns: tuple[str, ...], header: bool, shown: str,
                 keep: list[str] | None = None, batch_bytes: int = CSV_BATCH_BYTES) -> Iterator[pl.DataFrame]:
    """Yield the CSV as string frames with a `__line` column (the record's row, header = 1: the line
    number unless a quoted field spans lines); only the `keep` columns when given. UTF-8 with or
    without BOM, LF or CRLF, quoted newlines. A file that cannot be parsed raises UnreadableFileError
    with the first bad row; an empty headerless file has no rows."""
    wanted = list(columns) if keep is None else [c for c in keep if c in columns]
    read = pacsv.ReadOptions(column_names=list(columns), skip_rows=1 if header else 0, block_size=batch_bytes)
    parse = pacsv.ParseOptions(newlines_in_values=True)
    convert = pacsv.ConvertOptions(
        column_types={c: pa_arrow.string() for c in columns}, include_columns=wanted,
        null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=False,
    )
    first_line = 2 if header else 1
    try:
        with fs.open(path, "rb") as raw:
            reader = pacsv.open_csv(raw, read_options=read, parse_options=parse, convert_options=convert)
            for record_batch in reader:
                frame = pl.DataFrame(record_batch)
                yield frame.with_row_index(LINE, offset=first_line).with_columns(pl.col(LINE).cast(pl.Int64))
                first_line += record_batch.num_rows
    except pa_arrow.ArrowInvalid as exc:
        if str(exc).startswith("Empty CSV file"):
            return
        row, problem = locate_problem(fs, path, len(columns), batch_bytes) or (first_line, str(exc).splitlines()[0][:200])
        raise UnreadableFileError(shown, row, problem) from exc
    except ARCHIVE_READ_ERRORS as exc:
        raise SourceError(f"{shown}: corrupt archive member ({type(exc).__name__}: {exc})") from exc


def locate_problem(fs, path: str, width: int, max_field: int) -> tuple[int, str] | None:
    """The first record (row, header = 1) that pyarrow refused, and why: only run once a read failed."""
    csv.field_size_limit(max(csv.field_size_limit(), max_field))
    with fs.open(path, "rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
        records = csv.reader(text)
        row = 0
        try:
            for row, fields in enumerate(records, start=1):
                if any(NOT_UTF8.search(field) for field in fields):
                    return row, "not UTF-8 text"
                if len(fields) != width:
                    return row, f"has {len(fields)} fields, expected {width}"
                if max(map(len, fields), default=0) >= max_field:
                    return row, f"a field is larger than {max_field} bytes"
        except csv.Error as exc:
            return row + 1, f"malformed CSV ({exc})"
    return None


def check_header(kind: str, columns: tuple[str, ...], shown: str) -> None:
    """A header must name every required column of its model, each once."""
    if not columns or columns == ("",):
        raise UnreadableFileError(shown, 1, "empty file: no header line")
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise UnreadableFileError(shown, 1, f"header names {duplicated} more than once")
    required = [name for name, column in SCHEMAS[kind].to_schema().columns.items() if column.required]
    missing = [name for name in required if name not in columns]
    if missing:
        raise UnreadableFileError(shown, 1, f"header lacks required columns {missing}")


def typed(frame: pl.DataFrame, kind: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cast string columns to the model's dtypes; values that do not parse become failures (and null)."""
    columns = SCHEMAS[kind].to_schema().columns
    casts, failures = [], []
    for name, column in columns.items():
        if name not in frame.columns or column.dtype.type == pl.String:
            continue
        target = column.dtype.type
        number = pl.col(name).cast(pl.Float64, strict=False)
        if target != pl.Float64:
            parsed = pl.when(number == number.round()).then(number).otherwise(None).cast(target, strict=False)
        else:
            parsed = number.fill_nan(None) if column.nullable else number  # "nan" in an optional column: not given
        casts.append(parsed.alias(name))
        unparsed = number.is_null() if target == pl.Float64 else parsed.is_null()
        failures.append(
            frame.lazy()
            .filter(pl.col(name).is_not_null() & unparsed)
            .select(pl.col(LINE).alias("row"), pl.lit(name).alias("column"),
                    pl.lit(f"is {'a number' if target == pl.Float64 else 'an integer'}").alias("check"),
                    pl.col(name).alias("value"))
        )
    parse_failures = pl.concat(pl.collect_all(failures)) if failures else pl.DataFrame(schema=FAILURE_SCHEMA)
    return frame.with_columns(casts), parse_failures


def check_batch(frame: pl.DataFrame, kind: str) -> pl.DataFrame:
    """All of the model's failures in a typed batch, as rows `row, column, check, value`."""
    try:
        SCHEMAS[kind].to_schema().validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        index = cases.get_column("index")
        lines = frame.get_column(LINE).gather(index.fill_null(0).cast(pl.Int64))
        return cases.select(
            pl.when(pl.col("index").is_not_null()).then(lines).cast(pl.Int64).alias("row"),
            pl.when(pl.col("schema_context") == "Column").then(pl.col("column")).alias("column"),
            pl.col("check"),
            pl.col("failure_case").cast(pl.String).str.slice(0, 200).alias("value"),
        )
    return pl.DataFrame(schema=FAILURE_SCHEMA)
