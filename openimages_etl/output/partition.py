"""Split each CSV by subset with polars' streaming engine, leaving out rejected rows, as parts of the output CSVs."""

from __future__ import annotations

from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from openimages_etl.format.layout import ByteRange, CsvFile
from openimages_etl.format.selection import Selection
from openimages_etl.format.tables import CSV_PASSES, LINE, scan, unreadable
from openimages_etl.format.validation import Keys, TableCheck
from openimages_etl.schemas.kinds import ANNOTATIONS, TABLES, TableKind
from openimages_etl.schemas.tables import BoxSchema as Box
from openimages_etl.schemas.tables import ImageLabelSchema as ImageLabel
from openimages_etl.schemas.tables import ImageListSchema as ImageList
from openimages_etl.storage.locations import file_slug, safe_name
from openimages_etl.storage.workarea import StoredFile, WorkArea, read_stored, scan_stored

NO_SUBSET = "*"  # the report's subset key of rows that belong to none (the class list)


@dataclass(frozen=True)
class PartitionResult:
    """Rows in, rows written per subset, rows rejected and rows outside the chosen subsets, for one CSV."""

    file: str
    kind: TableKind
    rows_in: int
    published: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    not_selected: int = 0
    per_class: tuple[tuple[str, str, int], ...] = ()  # (subset, LabelName, rows written), with a selection
    parts: tuple[CsvPart, ...] = ()


@dataclass(frozen=True)
class CsvPart:
    """One CSV's rows for one output CSV of the export (`output`, e.g. train-annotations-bbox.csv), without header;
    of a CSV partitioned as byte ranges, the rows of the range from byte `start` (its parts go in that order)."""

    output: str
    file: StoredFile
    start: int = 0


def output_columns(tables: list[CsvFile]) -> list[str]:
    """Columns of an output CSV: the model's order, then extras, over every source file of that kind."""
    present = {c for t in tables for c in t.columns}
    if tables[0].kind == TableKind.images:
        present.add(ImageList.subset)  # Datumaro takes each item's subset from this column
    known = TABLES[tables[0].kind].columns
    return [c for c in known if c in present] + sorted(present - set(known))


@dataclass(frozen=True)
class Rejected:
    """Rows that media conversion rejected: ImageIDs of images, and lines of one segmentation CSV (its masks)."""

    images: tuple[StoredFile, ...] = ()
    lines: tuple[StoredFile, ...] = ()


def rejected_lines(check: TableCheck, rejected: Rejected) -> pl.Series:
    return pl.concat([read_stored(ref).get_column(LINE) for ref in [check.rejected_lines, *rejected.lines]]).unique()


def rejected_images(rejected: Rejected) -> pl.Series:
    ids = [read_stored(ref).get_column(ImageList.image_id) for ref in rejected.images]
    return pl.concat(ids) if ids else pl.Series([], dtype=pl.String)


@dataclass(frozen=True)
class PartitionRequest:
    """One CSV to split: its verdict, the key tables, the subsets to write (None: all), the output CSV's `columns`,
    the work area the parts go to. `selection` leaves rows of other images and classes out (not selected);
    `classes` keeps only those rows of the class descriptions; `rejected` names rows media conversion rejected."""

    check: TableCheck
    keys: Keys
    subsets: list[str] | None
    columns: list[str]
    work: WorkArea | Path
    selection: Selection | None = None
    classes: list[str] | None = None
    rejected: Rejected = Rejected()


def partition_table(request: PartitionRequest) -> PartitionResult:
    """Two streaming scans of the CSV: one counts rows per (subset, rejected, selected), one writes every wanted
    subset's part into the work area's parts/."""
    check, subsets, columns, selection = request.check, request.subsets, request.columns, request.selection
    table = check.table
    work = WorkArea.of(request.work)
    routed = _selected(_routed(check, request.keys, request.rejected), table.kind, selection, request.classes)
    try:  # validated already, but a byte range is read anew (csvranges.range_check)
        with CSV_PASSES:
            counts = routed.group_by("subset", "rejected", "selected").len().collect()
    except pl.exceptions.PolarsError as exc:
        raise unreadable(table, exc) from exc
    usable = pl.col("subset").is_not_null() & ~pl.col("rejected")  # unlisted images' rows were rejected by validation
    wanted = usable & pl.col("selected") & (pl.col("subset").is_in(subsets) if subsets is not None else pl.lit(True))
    published = dict(counts.filter(wanted).select("subset", "len").iter_rows())
    rejected_rows = int(counts.filter(~usable).get_column("len").sum())
    not_selected = int(counts.filter(usable & ~wanted).get_column("len").sum())
    name = TABLES[table.kind].output
    present = routed.collect_schema().names()
    outputs = {
        subset: name.format(subset=safe_name(subset, "Subset") if subset else "") for subset in sorted(published)
    }
    within = f"{table.start}/" if table.start else ""  # a byte range's parts keep the file's name, in a folder of it
    files = {subset: f"parts/{output}/{within}{file_slug(table.path)}.csv" for subset, output in outputs.items()}
    per_class = selection is not None and table.kind in ANNOTATIONS
    try:
        with ExitStack() as writing:
            sinks = [
                routed.filter(wanted & (pl.col("subset") == subset))
                .select([pl.col(c) if c in present else pl.lit(None, pl.String).alias(c) for c in columns])
                .sink_csv(
                    writing.enter_context(work.target(file)), include_header=False, line_terminator="\r\n", lazy=True
                )
                for subset, file in files.items()
            ]
            if per_class:
                sinks.append(routed.filter(wanted).group_by("subset", Box.label_name).len())
            with CSV_PASSES:
                done = pl.collect_all(sinks)
    except pl.exceptions.PolarsError as exc:
        raise unreadable(table, exc) from exc
    parts = tuple(
        CsvPart(outputs[subset], work.stored(file, published[subset]), table.start) for subset, file in files.items()
    )
    return PartitionResult(
        table.path,
        table.kind,
        check.rows,
        {s or NO_SUBSET: n for s, n in published.items()},
        rejected_rows,
        not_selected,
        tuple(done[-1].iter_rows()) if per_class else (),
        parts,
    )


def partition_ranges(check: TableCheck, selection: Selection | None) -> tuple[ByteRange, ...]:
    """The byte ranges to partition `check`'s CSV as, a task each: those it was validated as, unless a row's fate
    depends on rows before it (labels merged to one per image and class); none: the file whole."""
    if check.table.kind == TableKind.labels and selection is not None and selection.merge:
        return ()
    return check.ranges if len(check.ranges) > 1 else ()


def merge_partitions(check: TableCheck, ranges: list[PartitionResult]) -> PartitionResult:
    """One CSV's result from its byte ranges' (in order): counts summed, parts in range order."""
    published: Counter[str] = Counter()
    per_class: Counter[tuple[str, str]] = Counter()
    for result in ranges:
        published.update(result.published)
        per_class.update({(subset, label): rows for subset, label, rows in result.per_class})
    return PartitionResult(
        check.table.path,
        check.table.kind,
        sum(r.rows_in for r in ranges),
        dict(sorted(published.items())),
        sum(r.rejected for r in ranges),
        sum(r.not_selected for r in ranges),
        tuple((subset, label, rows) for (subset, label), rows in per_class.items()),
        tuple(part for r in ranges for part in r.parts),
    )


def _selected(
    routed: pl.LazyFrame, kind: TableKind, selection: Selection | None, classes: list[str] | None
) -> pl.LazyFrame:
    """The `selected` flag of each row, and its LabelName after merge_subclasses."""
    if kind == TableKind.classes:
        return routed.with_columns(
            (pl.col(Box.label_name).is_in(classes) if classes is not None else pl.lit(True)).alias("selected")
        )
    if selection is None:
        return routed.with_columns(pl.lit(True).alias("selected"))
    if selection.images is not None:
        chosen = scan_stored(selection.images).select(ImageList.image_id, pl.lit(True).alias("selected"))
        routed = routed.join(chosen, on=ImageList.image_id, how="left", maintain_order="left").with_columns(
            pl.col("selected").fill_null(False)
        )
    else:
        routed = routed.with_columns(pl.lit(True).alias("selected"))
    if kind == TableKind.images:
        return routed
    routed = routed.with_columns(
        (pl.col("selected") & selection.label_filter(kind)).alias("selected"), selection.relabel(kind)
    )
    # two subclasses' labels on one image are one label of their class once merged
    if kind == TableKind.labels and selection.merge:
        kept = pl.col("selected") & ~pl.col("rejected")
        first = pl.struct(ImageList.image_id, Box.label_name, ImageLabel.confidence, kept).is_first_distinct()
        routed = routed.with_columns((pl.col("selected") & first).alias("selected"))
    return routed


def _routed(check: TableCheck, keys: Keys, rejected: Rejected) -> pl.LazyFrame:
    """Every row of the CSV as strings with its `subset` (its image's, from the image lists) and `rejected` flag."""
    table = check.table
    frame = scan(table, strict_utf8=check.utf8)
    dropped = pl.col(LINE).is_in(rejected_lines(check, rejected).implode())
    if ImageList.image_id in table.columns:
        dropped |= pl.col(ImageList.image_id).is_in(rejected_images(rejected).implode())
    frame = frame.with_columns(dropped.alias("rejected"))
    if table.kind == TableKind.classes:
        return frame.with_columns(pl.lit("").alias("subset"))
    listed = scan_stored(keys.images).select(ImageList.image_id, "subset")
    frame = frame.join(listed, on=ImageList.image_id, how="left", maintain_order="left")
    return frame.with_columns(pl.col("subset").alias(ImageList.subset)) if table.kind == TableKind.images else frame
