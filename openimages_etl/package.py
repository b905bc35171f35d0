"""Assemble the staged export into an Open Images zip that Datumaro (and so CVAT) imports as it is."""
from __future__ import annotations

import zipfile
from pathlib import Path

import polars as pl

from openimages_etl.schemas.kinds import TABLES, TableKind
from openimages_etl.schemas.tables import ImageListSchema as ImageList

from .convert import exported_sizes
from .deflate import LEVEL, write_deflated
from .layout import Layout
from .storage import member_path
from .shards import copy_entries
from .validation import Keys

HIERARCHY_NAME = "bbox_labels_600_hierarchy.json"
CLASSES_NAME = TABLES[TableKind.classes].output  # headerless, as Datumaro writes and reads it


def build_zip(zip_path: Path, out_dir: Path, layout: Layout, keys: Keys,
              columns: dict[str, list[str]], subsets: list[str], hierarchy: Path | None = None) -> Path:
    """Write `zip_path` from the staging folder: CSVs deflated on every core, JSON and lists by zipfile, media
    copied from the batches' STORED shards. `columns` maps each output CSV name to its header."""
    sizes = exported_sizes(keys, out_dir).collect()
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED, compresslevel=LEVEL) as archive:
        for name in _output_tables(out_dir, subsets):
            header = columns.get(name)
            first = [(",".join(header) + "\r\n").encode()] if header and name != CLASSES_NAME else []
            write_deflated(archive, f"annotations/{name}", first + sorted((out_dir / "parts" / name).glob("*.csv")))
        for subset in subsets:
            if not (out_dir / "parts" / TABLES[TableKind.images].output_name(subset)).exists():
                _write_image_list(archive, subset, sizes)
        if hierarchy:  # pruned to a selection's classes
            archive.write(hierarchy, f"annotations/{HIERARCHY_NAME}")
        elif layout.hierarchy:
            fs, base = layout.root.open_fs()
            archive.writestr(f"annotations/{HIERARCHY_NAME}", fs.cat_file(member_path(base, layout.hierarchy)))
        known = sizes.filter(pl.col("subset").is_in(subsets) & pl.col("height").is_not_null())
        if known.height:
            lines = known.select(pl.format("{} {} {}", shell_quoted(pl.col(ImageList.image_id)), "height", "width")).to_series()
            archive.writestr("annotations/images.meta", "# image_id height width\n" + "\n".join(lines) + "\n")
        wanted = tuple(f"{media}/{subset}/" for media in ("images", "masks") for subset in subsets)
        for shard in sorted((out_dir / "media").glob("*.zip")):
            copy_entries(archive, shard, wanted)
    return zip_path


def _output_tables(out_dir: Path, subsets: list[str]) -> list[str]:
    wanted = {spec.output_name(s) for s in subsets for spec in TABLES.values()} | {CLASSES_NAME}
    parts = out_dir / "parts"
    return sorted(p.name for p in parts.iterdir() if p.name in wanted) if parts.is_dir() else []


def _write_image_list(archive: zipfile.ZipFile, subset: str, sizes: pl.DataFrame) -> None:
    """A source without image lists still gets one per subset: Datumaro's importer reads items from it."""
    ids = sizes.filter(pl.col("subset") == subset).select(ImageList.image_id, pl.lit(subset).alias(ImageList.subset))
    if ids.height:  # written by polars: an id with a comma or a quote is quoted, as Datumaro's csv module does
        rows = ids.with_columns(pl.lit(None, pl.String).alias(c) for c in ImageList.to_schema().columns if c not in ids.columns)
        name = TABLES[TableKind.images].output_name(subset)
        archive.writestr(f"annotations/{name}", rows.write_csv(line_terminator="\r\n"))


def shell_quoted(ids: pl.Expr) -> pl.Expr:
    """Each id as Python's shlex.quote writes it (what Datumaro's images.meta holds, and how it reads it back)."""
    return pl.when(ids.str.contains(r"[^\w@%+=:,./-]|[^\x00-\x7f]") | (ids == "")).then(
        pl.lit("'") + ids.str.replace_all("'", "'\"'\"'", literal=True) + pl.lit("'")).otherwise(ids)
