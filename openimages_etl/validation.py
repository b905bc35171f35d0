"""Validate each CSV against its pandera model, and the checks across files (labels, image ids, files)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from openimages_etl.schemas.tables import BoxSchema as Box
from openimages_etl.schemas.tables import ClassDescriptionSchema as Classes
from openimages_etl.schemas.tables import ImageListSchema as ImageList
from openimages_etl.schemas.tables import SAFE_NAME
from openimages_etl.schemas.tables import SegmentationSchema as Segmentation

from .config import FAILURES_KEPT_PER_CHECK
from .failures import FailureLog, FailureSummary, failure_frame
from .layout import CsvFile, Layout
from .progress import track_rows
from .storage import file_slug, member_path
from .tables import LINE, check_batch, iter_batches, typed

DEFAULT_SUBSET = "default"


@dataclass(frozen=True)
class Keys:
    """Parquet files the checks across files join against, and the image count per subset."""

    images: str  # ImageID, subset, rotation, path, height, width (from images.meta), file, line
    labels: str  # LabelName, DisplayName
    images_per_subset: dict[str, int]
    has_image_files: bool
    failures: FailureSummary = field(default_factory=FailureSummary)


@dataclass(frozen=True)
class TableCheck:
    """The verdict on one CSV: rows read, failures, and where the failing line numbers are kept."""

    table: CsvFile
    rows: int
    failures: FailureSummary
    rejected_lines: str  # parquet: __line
    mask_jobs: str | None = None  # parquet for segmentation CSVs: MaskPath, ImageID, __line (valid rows)


def build_keys(layout: Layout, work_dir: Path) -> Keys:
    """Read the small tables whole (classes) and the key columns of the image lists, then check them."""
    fs, base = layout.root.open_fs()
    log = FailureLog()
    (classes,) = layout.of_kind("classes") or [None]
    labels = _read_columns(fs, base, classes, [Classes.label_name, Classes.display_name]) if classes else pl.DataFrame(
        schema={Classes.label_name: pl.String, Classes.display_name: pl.String})
    images = _image_list(fs, base, layout)
    unsafe = images.filter(~pl.col("subset").str.contains(SAFE_NAME) | pl.col("subset").str.contains("..", literal=True))
    log.add(_failures(unsafe.rename({"subset": ImageList.subset}), ImageList.subset, "Subset is a safe folder name"))  # it names folders of the export
    images = images.join(unsafe, on=["file", "line"], how="anti", nulls_equal=True)
    files = pl.read_parquet(layout.image_files)
    images = _attach_files(images, files)
    duplicated = images.filter(pl.col(ImageList.image_id).is_duplicated() & ~pl.col(ImageList.image_id).is_first_distinct())
    log.add(_failures(duplicated, ImageList.image_id, "ImageID unique across image lists"))
    if files.height:
        log.add(_failures(images.filter(pl.col("path").is_null()), ImageList.image_id, "image file present"))
    if layout.images_meta:
        images = _attach_meta(fs, base, layout.images_meta, images, log)
    if layout.hierarchy:
        _check_hierarchy(fs, base, layout.hierarchy, set(labels.get_column(Classes.label_name).to_list()), log)
    keys_dir = work_dir / "keys"
    keys_dir.mkdir(parents=True, exist_ok=True)
    images_path, labels_path = keys_dir / "images.parquet", keys_dir / "labels.parquet"
    images.unique(ImageList.image_id, keep="first", maintain_order=True).write_parquet(images_path)
    labels.write_parquet(labels_path)
    per_subset = dict(images.group_by("subset").len().iter_rows())
    return Keys(str(images_path), str(labels_path), per_subset, files.height > 0, log.summary())


def _read_columns(fs, base: str, table: CsvFile, columns: list[str]) -> pl.DataFrame:
    batches = list(iter_batches(fs, member_path(base, table.path), table.columns, table.header, table.path, keep=columns))
    return pl.concat(batches) if batches else pl.DataFrame(schema={**{c: pl.String for c in columns}, LINE: pl.Int64})


def _image_list(fs, base: str, layout: Layout) -> pl.DataFrame:
    frames = []
    for table in layout.of_kind("images"):
        keep = [ImageList.image_id, ImageList.subset, ImageList.rotation]
        frame = _read_columns(fs, base, table, keep)
        subset = pl.lit(table.subset) if table.subset else pl.col(ImageList.subset) if ImageList.subset in frame.columns else pl.lit(None)
        rotation = pl.col(ImageList.rotation) if ImageList.rotation in frame.columns else pl.lit(None)
        frames.append(frame.select(
            pl.col(ImageList.image_id),
            subset.fill_null(DEFAULT_SUBSET).cast(pl.String).alias("subset"),
            rotation.cast(pl.String).alias("rotation"),
            pl.lit(table.path).alias("file"), pl.col(LINE).alias("line"),
        ))
    if frames:
        return pl.concat(frames)
    # No image list: every image file is an item, in the subset its folder names (Datumaro does the same).
    files = pl.read_parquet(layout.image_files)
    return files.select(
        pl.col("stem").alias(ImageList.image_id), pl.col("folder").fill_null(DEFAULT_SUBSET).alias("subset"),
        pl.lit(None, pl.String).alias("rotation"), pl.lit(None, pl.String).alias("file"), pl.lit(None, pl.Int64).alias("line"),
    )


def _attach_files(images: pl.DataFrame, files: pl.DataFrame) -> pl.DataFrame:
    """Image file for each listed image: the one in a folder named like its subset, else the only one with its stem."""
    exact = images.join(files, left_on=[ImageList.image_id, "subset"], right_on=["stem", "folder"], how="left")
    unique_stems = files.filter(pl.col("stem").is_unique()).select("stem", pl.col("path").alias("by_stem"))
    return exact.join(unique_stems, left_on=ImageList.image_id, right_on="stem", how="left").select(
        pl.exclude("by_stem", "path"), pl.coalesce("path", "by_stem").alias("path"))


def _attach_meta(fs, base: str, meta_path: str, images: pl.DataFrame, log: FailureLog) -> pl.DataFrame:
    """`images.meta`: `ImageID height width` per line, whitespace separated, `#` comments."""
    with fs.open(member_path(base, meta_path), "rb") as raw:
        text = raw.read().decode("utf-8-sig", errors="replace")
    lines = pl.DataFrame({"text": text.splitlines()}).with_row_index("line", offset=1).with_columns(pl.col("line").cast(pl.Int64))
    rows = lines.filter(~pl.col("text").str.strip_chars().str.starts_with("#") & (pl.col("text").str.strip_chars() != ""))
    fields = rows.with_columns(pl.col("text").str.extract_all(r"\S+").alias("fields"))
    bad = fields.filter((pl.col("fields").list.len() != 3) | pl.col("fields").list.get(1, null_on_oob=True).cast(pl.Int64, strict=False).fill_null(0).le(0)
                        | pl.col("fields").list.get(2, null_on_oob=True).cast(pl.Int64, strict=False).fill_null(0).le(0))
    log.add(bad.select(pl.lit(meta_path).alias("file"), pl.col("line").alias("row"), pl.lit(None, pl.String).alias("column"),
                       pl.lit("'ImageID height width' with positive integer sizes").alias("check"), pl.col("text").alias("value")))
    sizes = fields.join(bad, on="line", how="anti").select(
        pl.col("fields").list.get(0).alias("meta_id"),
        pl.col("fields").list.get(1).cast(pl.Int64).alias("height"),
        pl.col("fields").list.get(2).cast(pl.Int64).alias("width"),
    ).unique("meta_id", keep="last")
    return images.join(sizes, left_on=ImageList.image_id, right_on="meta_id", how="left")


def _check_hierarchy(fs, base: str, path: str, labels: set[str], log: FailureLog) -> None:
    """The class hierarchy JSON: nested {LabelName, Subcategory, Part}; every node but the root defined."""
    try:
        with fs.open(member_path(base, path), "rb") as raw:
            tree = json.load(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        log.add(failure_frame([{"file": path, "row": None, "column": None, "check": "valid JSON", "value": str(exc)[:200]}]))
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


def validate_table(layout: Layout, table: CsvFile, keys: Keys, work_dir: Path,
                   keep: int = FAILURES_KEPT_PER_CHECK) -> TableCheck:
    """Every row of one CSV through its pandera model and the checks across files, batch by batch."""
    fs, base = layout.root.open_fs()
    log, rejected, jobs, rows = FailureLog(keep), [], [], 0
    label_names = pl.read_parquet(keys.labels, columns=[Classes.label_name]).to_series()
    image_ids = pl.read_parquet(keys.images, columns=[ImageList.image_id]).to_series()
    mask_names = pl.read_parquet(layout.mask_files, columns=["name"]).to_series() if table.kind == "masks" else None
    path = member_path(base, table.path)
    for batch in track_rows(iter_batches(fs, path, table.columns, table.header, table.path), fs.size(path)):
        rows += batch.height
        frame, parse_failures = typed(batch, table.kind)
        schema_failures = check_batch(frame, table.kind).join(parse_failures, on=["row", "column"], how="anti", nulls_equal=True)
        cross = _cross_file_failures(frame, table, label_names, image_ids, mask_names)
        found = pl.concat([parse_failures, schema_failures, cross]).with_columns(pl.lit(table.path).alias("file"))
        log.add(found)
        bad_lines = found.get_column("row").drop_nulls().unique()
        rejected.append(bad_lines)
        if mask_names is not None:
            jobs.append(frame.filter(~pl.col(LINE).is_in(bad_lines.implode())).select(
                Segmentation.mask_path, Segmentation.image_id, LINE))
    out = work_dir / "checks"
    out.mkdir(parents=True, exist_ok=True)
    stem = file_slug(table.path)
    rejected_path = out / f"{stem}.rejected.parquet"
    pl.DataFrame({LINE: pl.concat(rejected) if rejected else pl.Series([], dtype=pl.Int64)}).write_parquet(rejected_path)
    jobs_path = None
    if mask_names is not None:
        jobs_path = str(out / f"{stem}.maskjobs.parquet")
        (pl.concat(jobs) if jobs else pl.DataFrame(schema={Segmentation.mask_path: pl.String, Segmentation.image_id: pl.String, LINE: pl.Int64})).write_parquet(jobs_path)
    return TableCheck(table, rows, log.summary(), str(rejected_path), jobs_path)


def _cross_file_failures(frame: pl.DataFrame, table: CsvFile, label_names: pl.Series, image_ids: pl.Series,
                         mask_names: pl.Series | None) -> pl.DataFrame:
    rules = []
    if table.kind in ("boxes", "labels", "masks"):
        rules.append((Box.label_name, ~pl.col(Box.label_name).is_in(label_names.implode()), "LabelName defined in class descriptions"))
        rules.append((Box.image_id, ~pl.col(Box.image_id).is_in(image_ids.implode()), "ImageID in image list"))
    if mask_names is not None:
        rules.append((Segmentation.mask_path, ~pl.col(Segmentation.mask_path).is_in(mask_names.implode()), "mask file present"))
    if not rules:
        return failure_frame().drop("file")
    return pl.concat([
        frame.filter(condition & pl.col(column).is_not_null()).select(
            pl.col(LINE).alias("row"), pl.lit(column).alias("column"), pl.lit(check).alias("check"), pl.col(column).alias("value"))
        for column, condition, check in rules
    ])


def _failures(frame: pl.DataFrame, column: str, check: str) -> pl.DataFrame:
    return frame.select(pl.col("file"), pl.col("line").alias("row"), pl.lit(column).alias("column"),
                        pl.lit(check).alias("check"), pl.col(column).alias("value"))
