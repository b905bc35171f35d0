"""Split each CSV by subset in one streaming pass, leaving out rejected rows, as parts of the output CSVs."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from openimages_etl.schemas.tables import ImageListSchema as ImageList

from .layout import CsvFile, Layout
from .storage import file_slug, member_path
from .tables import LINE, SCHEMAS, iter_batches
from .validation import Keys, TableCheck

OUTPUT_NAMES = {
    "classes": "class-descriptions.csv",
    "images": "{subset}-images-with-rotation.csv",  # what Datumaro's importer matches (not the CVAT page's name)
    "boxes": "{subset}-annotations-bbox.csv",
    "labels": "{subset}-annotations-human-imagelabels.csv",
    "masks": "{subset}-annotations-object-segmentation.csv",
}


@dataclass(frozen=True)
class PartitionResult:
    """Rows in, rows written per subset, rows rejected and rows outside the chosen subsets, for one CSV."""

    file: str
    kind: str
    rows_in: int
    published: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    not_selected: int = 0


def output_columns(tables: list[CsvFile]) -> list[str]:
    """Columns of an output CSV: the model's order, then extras, over every source file of that kind."""
    present = {c for t in tables for c in t.columns}
    if tables[0].kind == "images":
        present.add(ImageList.subset)  # Datumaro takes each item's subset from this column
    known = list(SCHEMAS[tables[0].kind].to_schema().columns)
    return [c for c in known if c in present] + sorted(present - set(known))


def rejected_lines(check: TableCheck, out_dir: Path) -> pl.Series:
    extra = sorted((out_dir / "rejected").glob(f"lines-{file_slug(check.table.path)}-*.parquet"))
    return pl.concat([pl.read_parquet(p).get_column(LINE) for p in [check.rejected_lines, *extra]]).unique()


def rejected_images(out_dir: Path) -> pl.Series:
    files = sorted((out_dir / "rejected").glob("images-*.parquet"))
    return pl.concat([pl.read_parquet(p).get_column(ImageList.image_id) for p in files]) if files else pl.Series([], dtype=pl.String)


def partition_table(layout: Layout, check: TableCheck, keys: Keys, subsets: list[str] | None,
                    columns: list[str], out_dir: Path) -> PartitionResult:
    table = check.table
    fs, base = layout.root.open_fs()
    bad_lines, bad_images = rejected_lines(check, out_dir).implode(), rejected_images(out_dir).implode()
    subset_of = pl.read_parquet(keys.images, columns=[ImageList.image_id, "subset"])
    name = OUTPUT_NAMES[table.kind]
    parts = out_dir / "parts"
    published, rejected, not_selected, rows_in = Counter(), 0, 0, 0
    handles: dict[str, object] = {}
    try:
        for batch in iter_batches(fs, member_path(base, table.path), table.columns, table.header, table.path):
            rows_in += batch.height
            keep = ~pl.col(LINE).is_in(bad_lines)
            if ImageList.image_id in batch.columns:
                keep &= ~pl.col(ImageList.image_id).is_in(bad_images)
            kept = batch.filter(keep)
            rejected += batch.height - kept.height
            if table.kind == "classes":
                kept = kept.with_columns(pl.lit("").alias("subset"))
            else:
                kept = kept.join(subset_of, on=ImageList.image_id, how="inner")
                if table.kind == "images":
                    kept = kept.with_columns(pl.col("subset").alias(ImageList.subset))
            if subsets is not None:
                selected = kept.filter(pl.col("subset").is_in(subsets))
                not_selected += kept.height - selected.height
                kept = selected
            for (subset,), rows in kept.partition_by("subset", as_dict=True, maintain_order=True).items():
                if subset not in handles:
                    target = parts / name.format(subset=subset) / f"{file_slug(table.path)}.csv"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    handles[subset] = target.open("wb")
                rows.select([pl.col(c) if c in rows.columns else pl.lit(None, pl.String).alias(c) for c in columns]).write_csv(
                    handles[subset], include_header=False, line_terminator="\r\n")
                published[subset or "*"] += rows.height
    finally:
        for handle in handles.values():
            handle.close()
    return PartitionResult(table.path, table.kind, rows_in, dict(published), rejected, not_selected)
