"""Charts of a dataset's statistics (matplotlib, Agg backend): classes, box sizes, boxes per image, image labels."""

from __future__ import annotations

import io

import matplotlib
import polars as pl
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure  # not pyplot: no global figure state, no GUI
from matplotlib.font_manager import FontProperties
from matplotlib.legend import Legend

from openimages_etl.report.stats import SIZE_BINS, DatasetStats
from openimages_etl.report.visuals import PNG_LEVEL, Visual, file_part

TOP_CLASSES = 30
MAX_BOXES_SHOWN = 30  # images with more boxes are counted in the last bar
DPI = 110
COLOURS = matplotlib.colormaps["tab10"].colors
# Unhinted glyphs: 11 % faster charts (laying out and rendering text is most of their time), no visible loss at
# this dpi.
STYLE = {
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "font.size": 10,
    "text.hinting": "no_hinting",
    # Titles at the top of the axes, where matplotlib puts them when nothing else is up there (as in every chart
    # here): said outright, it skips measuring every tick label to check (7 % of the charts' time, the same PNG bytes).
    "axes.titley": 1.0,
}
TOP, BOTTOM = 0.4, 0.55  # inches: the title's line above the axes, tick labels and the axis label below
PAD = 8  # points between a text and the figure's edge


def charts(stats: DatasetStats) -> list[Visual]:
    """Every chart that has data, in the order people should look at them."""
    with matplotlib.rc_context(STYLE):
        drawn = [(f"classes-{file_part(s)}.png", f"Classes in {s}", class_chart(stats, s)) for s in _subsets(stats)]
        drawn += [
            ("box-sizes.png", "Box sizes", box_size_chart(stats)),
            ("boxes-per-image.png", "Boxes per image", boxes_per_image_chart(stats)),
            ("image-labels.png", "Image-level labels: positive vs negative", image_label_chart(stats)),
        ]
    return [Visual(name, title, png) for name, title, png in drawn if png is not None]


def _subsets(stats: DatasetStats) -> list[str]:
    return sorted(set(stats.images) | set(stats.classes.get_column("subset").to_list()))


def class_chart(stats: DatasetStats, subset: str) -> bytes | None:
    """Top classes of a subset by boxes (by positive image labels when the subset has no boxes)."""
    rows = stats.classes.filter(pl.col("subset") == subset)
    measure = "boxes" if rows.get_column("boxes").sum() else "labels"
    rows = rows.filter(pl.col(measure) > 0).sort(measure, descending=True)
    if rows.is_empty():
        return None
    top = rows.head(TOP_CLASSES)
    fig, ax = _figure(1.2 + 0.26 * top.height)
    names, values = top.get_column("DisplayName").to_list()[::-1], top.get_column(measure).to_list()[::-1]
    bars = ax.barh(range(len(names)), values, color=COLOURS[0])
    ax.set_yticks(range(len(names)), names)
    ax.bar_label(bars, labels=[f"{v:,}" for v in values], padding=3, fontsize=8)
    ax.margins(x=0.12)
    ax.grid(axis="y", visible=False)
    what = "boxes" if measure == "boxes" else "positive image labels (no boxes)"
    shown = f"top {TOP_CLASSES} of {rows.height}" if rows.height > TOP_CLASSES else f"all {rows.height}"
    ax.set_title(f"{subset}: {shown} classes by {what} ({sum(rows.get_column(measure)):,} in all)", loc="left")
    ax.set_xlabel(measure)
    ax.xaxis.get_major_locator().set_params(integer=True)
    return _png(fig, ax)


def box_size_chart(stats: DatasetStats) -> bytes | None:
    """Share of boxes per size bin, one line per subset: sizes compare across subsets of any size."""
    if stats.box_sizes.is_empty():
        return None
    fig, ax = _figure(4)
    edges = [b / SIZE_BINS for b in range(SIZE_BINS + 1)]
    for colour, (subset, rows) in zip(
        COLOURS, stats.box_sizes.partition_by("subset", as_dict=True, maintain_order=True).items()
    ):
        counts = dict(rows.select("bin", "boxes").iter_rows())
        total = sum(counts.values())
        shares = [100 * counts.get(b, 0) / total for b in range(SIZE_BINS)]
        ax.stairs(
            shares, edges, label=f"{subset[0]} ({total:,} boxes)", color=colour, linewidth=2, fill=True, alpha=0.25
        )
        ax.stairs(shares, edges, color=colour, linewidth=1.5)
    ax.set_title("Box sizes", loc="left")
    ax.set_xlabel("box size: √(width × height), as a fraction of the image side")
    ax.set_ylabel("% of the subset's boxes")
    ax.set_xlim(0, 1)
    return _png(
        fig, ax, ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    )  # outside: never over the data


def boxes_per_image_chart(stats: DatasetStats) -> bytes | None:
    """Share of images with 0, 1, 2, ... boxes, one line per subset (the last bin holds every larger count)."""
    if stats.boxes_per_image.is_empty() or not stats.boxes_per_image.get_column("boxes").max():
        return None
    fig, ax = _figure(4)
    capped = stats.boxes_per_image.with_columns(pl.col("boxes").clip(0, MAX_BOXES_SHOWN))
    top = int(capped.get_column("boxes").max())
    groups = capped.partition_by("subset", as_dict=True, maintain_order=True)
    width = 0.8 / len(groups)
    for index, (colour, (subset, rows)) in enumerate(zip(COLOURS, groups.items())):
        counts = dict(rows.group_by("boxes").agg(pl.col("images").sum()).iter_rows())
        total = sum(counts.values())
        ax.bar(
            [n - 0.4 + width * (index + 0.5) for n in range(top + 1)],
            [100 * counts.get(n, 0) / total for n in range(top + 1)],
            width,
            label=f"{subset[0]} ({total:,} images)",
            color=colour,
        )
    ax.set_title("Boxes per image", loc="left")
    ax.set_xlabel(
        f"boxes on the image ({MAX_BOXES_SHOWN} = {MAX_BOXES_SHOWN} or more)"
        if top == MAX_BOXES_SHOWN
        else "boxes on the image"
    )
    ax.set_ylabel("% of the subset's images")
    ax.xaxis.get_major_locator().set_params(integer=True)
    return _png(
        fig, ax, ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    )  # outside: never over the data


def image_label_chart(stats: DatasetStats) -> bytes | None:
    """Share of positive (verified present) and negative (verified absent) image-level labels per subset."""
    rows = stats.image_labels.sort("subset")
    if rows.is_empty():
        return None
    fig, ax = _figure(1.4 + 0.5 * rows.height)
    totals = [p + n for p, n in rows.select("positive", "negative").iter_rows()]
    names = [f"{s} ({t:,})" for s, t in zip(rows.get_column("subset"), totals)]
    left = 0
    for column, colour, label in (
        ("positive", COLOURS[2], "positive (present)"),
        ("negative", COLOURS[3], "negative (verified absent)"),
    ):
        counts = rows.get_column(column).to_list()
        shares = [100 * c / max(t, 1) for c, t in zip(counts, totals)]
        bars = ax.barh(names, shares, left=left, color=colour, label=label)
        ax.bar_label(
            bars,
            labels=[f"{s:.0f}% ({c:,})" if s >= 15 else "" for s, c in zip(shares, counts)],
            label_type="center",
            color="white",
            fontsize=9,
        )
        left = shares
    ax.invert_yaxis()
    ax.grid(axis="y", visible=False)
    ax.set_xlim(0, 100)
    ax.set_title("Image-level labels: positive vs negative", loc="left")
    ax.set_xlabel("% of the subset's image-level labels")
    return _png(fig, ax, ax.legend(frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5)))


def selection_chart(classes: list[dict]) -> bytes | None:
    """Images selected per class (the report's selection section's rows), one bar per subset, top classes first."""
    rows = (
        pl.DataFrame(classes, schema={"subset": pl.String, "name": pl.String, "selected": pl.Int64}, strict=False)
        if classes
        else None
    )
    if rows is None or not rows.get_column("selected").sum():
        return None
    wide = rows.pivot(on="subset", index="name", values="selected", aggregate_function="sum").fill_null(0)
    subsets = sorted(c for c in wide.columns if c != "name")
    top = (
        wide.with_columns(pl.sum_horizontal(subsets).alias("all"))
        .sort(["all", "name"], descending=[True, False])
        .head(TOP_CLASSES)
    )
    with matplotlib.rc_context(STYLE):
        fig, ax = _figure(1.2 + 0.26 * top.height * max(1, len(subsets)) ** 0.5)
        names, step = top.get_column("name").to_list()[::-1], 0.8 / len(subsets)
        for number, subset in enumerate(subsets):
            values = top.get_column(subset).to_list()[::-1]
            ax.barh(
                [i + number * step for i in range(len(names))],
                values,
                height=step,
                color=COLOURS[number % len(COLOURS)],
                label=subset,
            )
        ax.set_yticks([i + 0.4 - step / 2 for i in range(len(names))], names)
        ax.grid(axis="y", visible=False)
        shown = f"top {TOP_CLASSES} of {wide.height} classes" if wide.height > TOP_CLASSES else f"{wide.height} classes"
        ax.set_title(f"Images selected per class ({shown})", loc="left")
        ax.set_xlabel("images")
        ax.xaxis.get_major_locator().set_params(integer=True)
        legend = ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        return _png(fig, ax, legend)


def _figure(height: float) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(8, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def _png(fig: Figure, ax: Axes, legend: Legend | None = None) -> bytes:
    """Render with margins sized from the few texts that decide them (y tick labels and label on the left, the legend
    on the right): a layout engine measures every tick label of both axes, and took 40 % of a chart's time."""
    renderer = fig.canvas.get_renderer()
    points = DPI / 72
    ticks = ax.yaxis.get_major_formatter().format_ticks(ax.get_yticks())
    font = FontProperties(size=matplotlib.rcParams["ytick.labelsize"])
    left = max((renderer.get_text_width_height_descent(t, font, ismath=False)[0] for t in ticks), default=0)
    left += (matplotlib.rcParams["ytick.major.size"] + matplotlib.rcParams["ytick.major.pad"] + PAD) * points
    if ax.get_ylabel():
        left += (
            1.2 * FontProperties(size=matplotlib.rcParams["axes.labelsize"]).get_size_in_points()
            + matplotlib.rcParams["axes.labelpad"]
        ) * points
    # without a legend, the last x tick label sticks out by half its width
    right = legend.get_window_extent(renderer).width + PAD * points if legend else 0.35 * DPI
    width, height = fig.bbox.width, fig.bbox.height
    fig.subplots_adjust(
        left=left / width, right=1 - right / width, top=1 - TOP * DPI / height, bottom=BOTTOM * DPI / height
    )
    out = io.BytesIO()
    fig.canvas.print_png(out, pil_kwargs={"compress_level": PNG_LEVEL})
    return out.getvalue()
