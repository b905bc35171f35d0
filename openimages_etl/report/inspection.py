"""`inspect`: what a source holds (layout, counts per subset and class) and its charts, without exporting anything."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from openimages_etl.config import Limits
from openimages_etl.format.layout import discover
from openimages_etl.format.selection import SelectionSpec, select, selection_summary
from openimages_etl.format.validation import build_keys
from openimages_etl.report.pictures import dataset_visuals, write_visuals
from openimages_etl.report.stats import DatasetStats, layout_kind
from openimages_etl.storage.locations import display_url, stage_source
from openimages_etl.storage.workarea import scan_stored

TOP_CLASSES = 30


@dataclass(frozen=True)
class Inspection:
    source: str
    layout: str
    tables: dict[str, list[str]]  # kind -> files
    image_files: int
    stats: DatasetStats
    charts: list[tuple[str, str]]  # (path, title)
    selection: dict[str, Any] | None = None  # what an export with these selection parameters would keep


def inspect_source(
    source: str,
    storage_options: dict[str, Any] | None,
    charts_dir: Path,
    limits: Limits = Limits(),
    work_dir: str | None = None,
    selection: SelectionSpec | None = None,
) -> Inspection:
    """Read SOURCE as the export does (same staging, layout discovery and key tables) and chart it into `charts_dir`;
    with `selection`, also draw what an export with it would select (the dry run)."""
    with tempfile.TemporaryDirectory(prefix="openimages-inspect-", dir=work_dir) as tmp:
        work = Path(tmp)
        layout = discover(stage_source(source, storage_options or {}, work, limits), work / "index", limits)
        keys = build_keys(layout, work)
        stats, visuals = dataset_visuals(layout, keys, sheets=False)
        tables: dict[str, list[str]] = {}
        for table in layout.tables:
            tables.setdefault(table.kind, []).append(table.path)
        image_files = scan_stored(layout.image_files).select(pl.len()).collect().item()
        write_visuals(visuals, charts_dir)
        charts = [(str(charts_dir / v.file), v.title) for v in visuals]
        chosen = (
            select(layout, keys, selection, sorted(keys.images_per_subset), work / "selection")
            if selection and selection.picks_images
            else None
        )
        return Inspection(
            display_url(source),
            layout_kind(layout),
            tables,
            image_files,
            stats,
            charts,
            selection_summary(chosen) if chosen else None,
        )


def to_text(inspection: Inspection) -> str:
    """What `openimages-etl inspect` prints."""
    totals = inspection.stats.totals()
    kinds = ["images", "boxes", "positive labels", "negative labels", "masks"]
    lines = [
        f"source: {inspection.source}",
        f"layout: {inspection.layout}; {inspection.image_files} image files",
        "files:",
    ]
    lines += [f"  {kind:<8} {', '.join(files)}" for kind, files in inspection.tables.items()]
    lines += ["", _columns(["subset", *kinds], [[s, *(c[k] for k in kinds)] for s, c in totals.items()])]
    classes = inspection.stats.classes
    if not classes.is_empty():
        per_class = (
            classes.group_by("LabelName", "DisplayName")
            .agg(pl.col("boxes").sum(), pl.col("labels").sum())
            .sort(["boxes", "labels", "LabelName"], descending=[True, True, False])
        )
        subsets = sorted(classes.get_column("subset").unique())
        wide = classes.pivot(on="subset", index="LabelName", values="boxes").fill_null(0)
        top = per_class.head(TOP_CLASSES).join(wide, on="LabelName", how="left")
        shown = (
            f"top {TOP_CLASSES} of {per_class.height}" if per_class.height > TOP_CLASSES else f"all {per_class.height}"
        )
        lines += [
            "",
            f"classes ({shown}, by boxes; positive image labels in all subsets):",
            _columns(
                ["class", "MID", *(f"{s} boxes" for s in subsets), "labels"],
                [
                    [r["DisplayName"], r["LabelName"], *(r.get(s) or 0 for s in subsets), r["labels"]]
                    for r in top.iter_rows(named=True)
                ],
            ),
        ]
    if inspection.selection:
        lines += ["", *_selection_lines(inspection.selection)]
    if inspection.charts:
        lines += ["", "charts:"] + [f"  {path}  ({title})" for path, title in inspection.charts]
    return "\n".join(lines)


def _selection_lines(selection: dict[str, Any]) -> list[str]:
    """What an export with the given selection would keep: classes resolved, images per class and subset."""
    lines = ["selection (what an export with these parameters would select):"]
    lines += [f"  {r['entry']} -> {r['mid']} {r['name']}" for r in selection["requested"]]
    lines += [
        f"  {selection['classes_selected']} classes with subclasses, less exclusions; "
        f"images per subset: {selection['images']}"
    ]
    lines += [f"  note: {note}" for note in selection["notes"]]
    if selection["classes"]:
        lines += [
            _columns(
                ["subset", "class", "MID", "images available", "images selected"],
                [[r["subset"], r["name"], r["mid"], r["available"], r["selected"]] for r in selection["classes"]],
            )
        ]
    lines += [f"  quota not met: {line}" for line in selection["shortfalls"]]
    return lines


def _columns(header: list[str], rows: list[list[Any]]) -> str:
    """A plain text table: text left-aligned, numbers right-aligned with thousands separators."""
    cells = [[(h, False) for h in header]] + [
        [(f"{v:,}", True) if isinstance(v, int) else (str(v), False) for v in row] for row in rows
    ]
    widths = [max(len(row[i][0]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(text.rjust(w) if number else text.ljust(w) for (text, number), w in zip(row, widths)).rstrip()
        for row in cells
    )
