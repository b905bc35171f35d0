"""Validate each CSV against its pandera model, and the checks across files (labels, image ids, files)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from openimages_etl.config import FAILURES_KEPT_PER_CHECK
from openimages_etl.format.failures import FailureLog, FailureSummary, failure_frame
from openimages_etl.format.layout import ByteRange, CsvFile, Layout
from openimages_etl.format.tables import (
    CSV_PASSES,
    FAILURE_SCHEMA,
    LINE,
    NotUtf8,
    UnparsedValue,
    check_batch,
    iter_batches,
    read_columns,
    rows_estimate,
    typed,
    typed_batches,
)
from openimages_etl.progress import track_rows
from openimages_etl.schemas.kinds import ANNOTATIONS, TableKind
from openimages_etl.schemas.tables import BoxSchema as Box
from openimages_etl.schemas.tables import ClassDescriptionSchema as Classes
from openimages_etl.schemas.tables import ImageListSchema as ImageList
from openimages_etl.schemas.tables import SegmentationSchema as Segmentation
from openimages_etl.storage.locations import SAFE_NAME, file_slug, member_path
from openimages_etl.storage.workarea import StoredFile, WorkArea, read_stored, scan_stored, schema_names

DEFAULT_SUBSET = "default"
FILE_OR_SIZE = "image file present, or its size in images.meta"
HASH_SEED = 20180430  # any fixed seed: hashes are compared only within one process


@dataclass(frozen=True)
class Keys:
    """Parquet files the checks across files join against, and the image count per subset."""

    images: StoredFile  # ImageID, subset, rotation, path, height, width (from images.meta), file, line
    labels: StoredFile  # LabelName, DisplayName
    images_per_subset: dict[str, int]
    has_image_files: bool
    failures: FailureSummary = field(default_factory=FailureSummary)


@dataclass(frozen=True)
class TableCheck:
    """The verdict on one CSV: rows read, failures, and where the failing line numbers are kept."""

    table: CsvFile
    rows: int
    failures: FailureSummary
    rejected_lines: StoredFile  # parquet: __line
    # parquet for segmentation CSVs: MaskPath, ImageID, LabelName, __line (valid rows)
    mask_jobs: StoredFile | None = None
    utf8: bool = True  # no byte that is not UTF-8: later passes may read strictly, which is faster
    ranges: tuple[ByteRange, ...] = ()  # the byte ranges it was validated as, in order, which partition takes too


def build_keys(layout: Layout, work: WorkArea | Path) -> Keys:
    """Read the small tables whole (classes) and the key columns of the image lists, then check them; the key tables
    go to `work`'s keys/."""
    fs, base = layout.root.open_fs()
    log = FailureLog()
    (classes,) = layout.of_kind(TableKind.classes) or [None]
    labels = (
        read_columns(classes, [Classes.label_name, Classes.display_name])
        if classes
        else pl.DataFrame(schema={Classes.label_name: pl.String, Classes.display_name: pl.String})
    )
    images = _image_list(fs, base, layout)
    unsafe = images.filter(~pl.col("subset").str.contains(SAFE_NAME))
    log.add(
        _failures(unsafe.rename({"subset": ImageList.subset}), ImageList.subset, "Subset is a safe folder name")
    )  # it names folders of the export
    images = images.join(unsafe, on=["file", "line"], how="anti", nulls_equal=True)
    files = read_stored(layout.image_files)
    images = _attach_files(images, files)
    duplicated = images.filter(
        pl.col(ImageList.image_id).is_duplicated() & ~pl.col(ImageList.image_id).is_first_distinct()
    )
    log.add(_failures(duplicated, ImageList.image_id, "ImageID unique across image lists"))
    if layout.images_meta:
        images = _attach_meta(fs, base, layout.images_meta, images, log)
    if layout.hierarchy:
        _check_hierarchy(fs, base, layout.hierarchy, set(labels.get_column(Classes.label_name).to_list()), log)
    tables = WorkArea.of(work).sub("keys")
    # Sorted by subset and id: a subset's images are then a range that conversion batches slice without a sort.
    images_ref = tables.write_parquet(
        "images.parquet",
        images.unique(ImageList.image_id, keep="first", maintain_order=True).sort("subset", ImageList.image_id),
    )
    per_subset = dict(images.group_by("subset").len().iter_rows())
    return Keys(images_ref, tables.write_parquet("labels.parquet", labels), per_subset, files.height > 0, log.summary())


def _image_list(fs, base: str, layout: Layout) -> pl.DataFrame:
    frames = []
    for table in layout.of_kind(TableKind.images):
        keep = [ImageList.image_id, ImageList.subset, ImageList.rotation]
        frame = read_columns(table, keep)
        subset = (
            pl.lit(table.subset)
            if table.subset
            else pl.col(ImageList.subset)
            if ImageList.subset in frame.columns
            else pl.lit(None)
        )
        rotation = pl.col(ImageList.rotation) if ImageList.rotation in frame.columns else pl.lit(None)
        frames.append(
            frame.select(
                pl.col(ImageList.image_id),
                subset.fill_null(DEFAULT_SUBSET).cast(pl.String).alias("subset"),
                rotation.cast(pl.String).alias("rotation"),
                pl.lit(table.path).alias("file"),
                pl.col(LINE).alias("line"),
            )
        )
    if frames:
        return pl.concat(frames)
    # No image list: every image file is an item, in the subset its folder names (Datumaro does the same).
    files = read_stored(layout.image_files)
    return files.select(
        pl.col("stem").alias(ImageList.image_id),
        pl.col("folder").fill_null(DEFAULT_SUBSET).alias("subset"),
        pl.lit(None, pl.String).alias("rotation"),
        pl.lit(None, pl.String).alias("file"),
        pl.lit(None, pl.Int64).alias("line"),
    )


def _attach_files(images: pl.DataFrame, files: pl.DataFrame) -> pl.DataFrame:
    """Image file for each listed image: the one in a folder named like its subset, else the only one with its stem."""
    exact = images.join(files, left_on=[ImageList.image_id, "subset"], right_on=["stem", "folder"], how="left")
    unique_stems = files.filter(pl.col("stem").is_unique()).select("stem", pl.col("path").alias("by_stem"))
    return exact.join(unique_stems, left_on=ImageList.image_id, right_on="stem", how="left").select(
        pl.exclude("by_stem", "path"), pl.coalesce("path", "by_stem").alias("path")
    )


# images.meta is read as Datumaro reads it, with shlex (comments on): fields split on blanks, a field may join quoted
# parts ('my photo', as shlex.quote writes an id with a space), `#` outside quotes starts a comment.
_META_PART = r"""'[^']*'|"[^"\\]*"|\\.|[^ \t\r\n'"\\#]"""
_META_FIELD = rf"(?:{_META_PART})+"
_META_UNQUOTE = r"""'([^']*)'|"([^"]*)"|\\(.)"""


def _attach_meta(fs, base: str, meta_path: str, images: pl.DataFrame, log: FailureLog) -> pl.DataFrame:
    """`images.meta`: `ImageID height width` per line, shell-quoted, `#` comments."""
    with fs.open(member_path(base, meta_path), "rb") as raw:
        text = raw.read().decode("utf-8-sig", errors="replace")
    lines = (
        pl.DataFrame({"text": text.splitlines()})
        .with_row_index("line", offset=1)
        .with_columns(pl.col("line").cast(pl.Int64))
    )
    parsed = lines.with_columns(code=pl.col("text").str.extract(rf"^((?:{_META_PART}|[ \t\r\n])*)")).with_columns(
        rest=pl.col("text").str.slice(
            pl.col("code").str.len_chars()
        ),  # a comment, or what shlex refuses: an open quote
        fields=pl.col("code")
        .str.extract_all(_META_FIELD)
        .list.eval(pl.element().str.replace_all(_META_UNQUOTE, "${1}${2}${3}")),
    )
    malformed = (pl.col("rest") != "") & ~pl.col("rest").str.starts_with("#")
    fields = parsed.filter((pl.col("fields").list.len() > 0) | malformed)  # blank and comment lines go
    bad = fields.filter(
        malformed
        | (pl.col("fields").list.len() != 3)
        | pl.any_horizontal(
            pl.col("fields").list.get(i, null_on_oob=True).cast(pl.Int64, strict=False).fill_null(0).le(0)
            for i in (1, 2)
        )
    )
    log.add(
        bad.select(
            pl.lit(meta_path).alias("file"),
            pl.col("line").alias("row"),
            pl.lit(None, pl.String).alias("column"),
            pl.lit("'ImageID height width' with positive integer sizes").alias("check"),
            pl.col("text").alias("value"),
        )
    )
    sizes = (
        fields.join(bad, on="line", how="anti")
        .select(
            pl.col("fields").list.get(0).alias("meta_id"),
            pl.col("fields").list.get(1).cast(pl.Int64).alias("height"),
            pl.col("fields").list.get(2).cast(pl.Int64).alias("width"),
        )
        .unique("meta_id", keep="last")
    )
    return images.join(sizes, left_on=ImageList.image_id, right_on="meta_id", how="left")


def _check_hierarchy(fs, base: str, path: str, labels: set[str], log: FailureLog) -> None:
    """The class hierarchy JSON: nested {LabelName, Subcategory, Part}; every node but the root defined."""
    try:
        with fs.open(member_path(base, path), "rb") as raw:
            tree = json.load(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        log.add(
            failure_frame([{"file": path, "row": None, "column": None, "check": "valid JSON", "value": str(exc)[:200]}])
        )
        return
    problems, stack = [], [(tree, True)]
    while stack:
        node, is_root = stack.pop()
        if not isinstance(node, dict) or not isinstance(node.get("LabelName"), str):
            problems.append({"check": "node is an object with a LabelName", "value": str(node)[:200]})
            continue
        if not is_root and labels and node["LabelName"] not in labels:
            problems.append({"check": "LabelName defined in class descriptions", "value": node["LabelName"]})
        for edge in ("Subcategory", "Part"):
            children = node.get(edge, [])
            if not isinstance(children, list):
                problems.append({"check": f"{edge} is a list", "value": str(children)[:200]})
                continue
            stack.extend((child, False) for child in children)
    log.add(failure_frame([{"file": path, "row": None, "column": "LabelName", **p} for p in problems]))


def validate_table(
    layout: Layout,
    table: CsvFile,
    keys: Keys,
    work: WorkArea | Path,
    keep: int = FAILURES_KEPT_PER_CHECK,
    part: str = "",
) -> TableCheck:
    """Every row of one CSV through its pandera model and the checks across files, batch by batch; the failing lines
    (and a segmentation CSV's valid mask rows) go to `work`'s checks/, named with `part` for one byte range of it
    (csvranges.py)."""
    references = (
        [
            (
                Box.label_name,
                KeyIndex(read_stored(keys.labels, [Classes.label_name]).to_series()),
                "LabelName defined in class descriptions",
                True,
            ),
            (
                Box.image_id,
                KeyIndex(read_stored(keys.images, [ImageList.image_id]).to_series()),
                "ImageID in image list",
                True,
            ),
        ]
        if table.kind in ANNOTATIONS
        else []
    )
    if table.kind in (TableKind.boxes, TableKind.masks) and keys.has_image_files:
        # An image may lack its file (Datumaro lists it so, CVAT imports it without media), but what is drawn on it
        # needs its size.
        references.append((Box.image_id, KeyIndex(_unsized(keys)), FILE_OR_SIZE, False))
    if table.kind == TableKind.masks:
        references.append(
            (
                Segmentation.mask_path,
                KeyIndex(read_stored(layout.mask_files, ["name"]).to_series()),
                "mask file present",
                True,
            )
        )
    estimate, not_utf8 = rows_estimate(table), NotUtf8(table)
    with CSV_PASSES:
        try:
            rows, log, rejected, jobs = _check_batches(
                track_rows(typed_batches(table, table.kind), estimate), None, table, references, keep
            )
        except UnparsedValue:  # a value is not a number, or not UTF-8: the exact path reports each one with its line
            rows, log, rejected, jobs = _check_batches(
                track_rows(iter_batches(table), 0), not_utf8, table, references, keep
            )
    out, stem = WorkArea.of(work).sub("checks"), file_slug(table.path) + part
    lines = out.write_parquet(
        f"{stem}.rejected.parquet",
        pl.DataFrame({LINE: pl.concat(rejected) if rejected else pl.Series([], dtype=pl.Int64)}),
    )
    mask_jobs = None
    if table.kind == TableKind.masks:
        mask_jobs = out.write_parquet(
            f"{stem}.maskjobs.parquet",
            pl.concat(jobs)
            if jobs
            else pl.DataFrame(
                schema={
                    Segmentation.mask_path: pl.String,
                    Segmentation.image_id: pl.String,
                    Segmentation.label_name: pl.String,
                    LINE: pl.Int64,
                }
            ),
        )
    return TableCheck(table, rows, log.summary(), lines, mask_jobs, utf8=not not_utf8.found)


def _check_batches(
    batches, not_utf8: NotUtf8 | None, table: CsvFile, references: list[tuple[str, KeyIndex, str, bool]], keep: int
):
    """Typed batches (or string ones, cast here and searched for bytes that are not UTF-8 with `not_utf8`) through the
    model and the references; what `validate_table` keeps."""
    log, rejected, jobs, rows = FailureLog(keep), [], [], 0
    for batch in batches:
        rows += batch.height
        frame, encoding, parse_failures = (
            batch,
            pl.DataFrame(schema=FAILURE_SCHEMA),
            pl.DataFrame(schema=FAILURE_SCHEMA),
        )
        if not_utf8 is not None:
            encoding = not_utf8.failures(batch, [c for c in batch.columns if c != LINE])
            frame, parse_failures = typed(batch, table.kind)
        schema_failures = check_batch(frame, table.kind).join(
            parse_failures, on=["row", "column"], how="anti", nulls_equal=True
        )
        cross = [_unmatched(frame, *reference) for reference in references if reference[0] in frame.columns]
        # a cell whose bytes were not UTF-8 is reported as that alone, not also as each rule its mangled value breaks
        others = pl.concat([parse_failures, schema_failures, *cross]).join(
            encoding, on=["row", "column"], how="anti", nulls_equal=True
        )
        found = pl.concat([encoding, others]).with_columns(pl.lit(table.path).alias("file"))
        log.add(found)
        bad_lines = found.get_column("row").drop_nulls().unique()
        rejected.append(bad_lines)
        if table.kind == TableKind.masks:
            jobs.append(
                frame.filter(~pl.col(LINE).is_in(bad_lines.implode())).select(
                    Segmentation.mask_path, Segmentation.image_id, Segmentation.label_name, LINE
                )
            )
    return rows, log, rejected, jobs


def _unsized(keys: Keys) -> pl.Series:
    """Listed images with neither a file nor a size in images.meta."""
    images = scan_stored(keys.images)
    sized = pl.col("height").is_not_null() if "height" in schema_names(keys.images) else pl.lit(False)
    return images.filter(pl.col("path").is_null() & ~sized).select(ImageList.image_id).collect().to_series()


def _unmatched(frame: pl.DataFrame, column: str, index: KeyIndex, check: str, among: bool) -> pl.DataFrame:
    """Rows whose `column` is given and is not among the keys of another file (`among`), or is (not `among`)."""
    values = frame.get_column(column)
    return frame.filter(values.is_not_null() & (index.contains(values) != among)).select(
        pl.col(LINE).alias("row"),
        pl.lit(column).alias("column"),
        pl.lit(check).alias("check"),
        pl.col(column).alias("value"),
    )


class KeyIndex:
    """Exact membership in (and position among) a large set of strings, built once and probed per batch.

    polars' `is_in` and joins hash the whole key set on every call (1.7 M image ids, once per batch);
    this keeps the keys' 64-bit hashes sorted, binary-searches each value's hash and confirms the string.
    Small key sets (labels) and ambiguous ones (repeated keys, a real hash collision) use polars directly."""

    SMALL = 50_000

    def __init__(self, keys: pl.Series):
        self._keys = keys
        hashes = keys.hash(HASH_SEED).to_numpy()
        self._order = np.argsort(hashes, kind="stable").astype(np.int64)
        self._hashes = hashes[self._order]
        self._sorted = keys.gather(self._order)
        self._direct = len(keys) <= self.SMALL or bool(np.any(self._hashes[1:] == self._hashes[:-1]))

    def _probe(self, values: pl.Series) -> tuple[np.ndarray, np.ndarray]:
        hashes = values.hash(HASH_SEED).to_numpy()
        at = np.minimum(np.searchsorted(self._hashes, hashes), len(self._hashes) - 1)
        return at, (self._hashes[at] == hashes) & (self._sorted.gather(at) == values).fill_null(False).to_numpy()

    def contains(self, values: pl.Series) -> pl.Series:
        if self._direct:
            return values.is_in(self._keys.implode()).fill_null(False)
        return pl.Series(values.name, self._probe(values)[1])

    def positions(self, values: pl.Series) -> pl.Series:
        """Index in the keys of each value (the first one when keys repeat), null where absent."""
        if self._direct:
            lookup = self._keys.to_frame("key").with_row_index("at").unique("key", keep="first")
            return (
                values.to_frame("key")
                .join(lookup, on="key", how="left", maintain_order="left")
                .get_column("at")
                .cast(pl.Int64)
            )
        at, hit = self._probe(values)
        return (
            pl.Series(values.name, self._order[at])
            .to_frame()
            .select(pl.when(pl.Series(hit)).then(pl.col(values.name)))
            .to_series()
        )


def _failures(frame: pl.DataFrame, column: str, check: str) -> pl.DataFrame:
    return frame.select(
        pl.col("file"),
        pl.col("line").alias("row"),
        pl.lit(column).alias("column"),
        pl.lit(check).alias("check"),
        pl.col(column).alias("value"),
    )
