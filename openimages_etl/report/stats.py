"""What a dataset holds, per subset and class: one vectorised pass over its CSVs, for charts and `inspect`."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from openimages_etl.format.layout import CsvFile, Layout
from openimages_etl.format.tables import iter_batches
from openimages_etl.format.validation import Keys
from openimages_etl.schemas.kinds import ANNOTATIONS, TableKind
from openimages_etl.schemas.tables import BoxSchema as Box
from openimages_etl.schemas.tables import ClassDescriptionSchema as Classes
from openimages_etl.schemas.tables import ImageLabelSchema as ImageLabel
from openimages_etl.schemas.tables import ImageListSchema as ImageList
from openimages_etl.schemas.tables import SegmentationSchema as Segmentation
from openimages_etl.storage.workarea import read_stored, scan_stored

SIZE_BINS = 40  # box size histogram over [0, 1]
UNLISTED = "(unlisted)"  # rows whose ImageID is in no image list (only an invalid source has them)
BOX_COLUMNS = [Box.image_id, Box.label_name, Box.x_min, Box.x_max, Box.y_min, Box.y_max]
MASK_COLUMNS = [Segmentation.mask_path, Segmentation.image_id, Segmentation.label_name]


@dataclass(frozen=True)
class DatasetStats:
    """Small aggregate frames (their size grows with classes and subsets, not rows), plus the sample's annotations."""

    images: dict[str, int]  # images listed per subset
    classes: pl.DataFrame  # subset, LabelName, DisplayName, boxes, labels (positive image labels)
    box_sizes: pl.DataFrame  # subset, bin (0..SIZE_BINS-1 of sqrt(w*h)), boxes
    boxes_per_image: pl.DataFrame  # subset, boxes (per image, 0 included), images
    image_labels: pl.DataFrame  # subset, positive, negative
    masks: dict[str, int]  # masks per subset
    sample_boxes: pl.DataFrame  # BOX_COLUMNS of the sampled images
    sample_masks: pl.DataFrame  # MASK_COLUMNS of the sampled images

    def totals(self) -> dict[str, dict[str, int]]:
        """images, boxes, labels (positive/negative) and masks per subset."""
        boxes = dict(self.box_sizes.group_by("subset").agg(pl.col("boxes").sum()).iter_rows())
        labels = {row["subset"]: row for row in self.image_labels.iter_rows(named=True)}
        subsets = sorted(set(self.images) | set(boxes) | set(labels) | set(self.masks))
        return {
            s: {
                "images": self.images.get(s, 0),
                "boxes": boxes.get(s, 0),
                "positive labels": labels.get(s, {}).get("positive", 0),
                "negative labels": labels.get(s, {}).get("negative", 0),
                "masks": self.masks.get(s, 0),
            }
            for s in subsets
        }


def layout_kind(layout: Layout) -> str:
    """Which of the two layouts the files follow, in words for people."""
    names = [t.path for t in layout.tables]
    if any(p.startswith("annotations/") or "/annotations/" in p for p in names):
        return "CVAT / Datumaro (annotations/ folder)"
    if any(p.rsplit("/", 1)[-1].startswith("oidv") or "boxable" in p for p in names):
        return "Google's official release"
    return "Open Images CSVs at the top (CVAT / Datumaro style)"


def sample_images(keys: Keys, per_subset: int) -> pl.DataFrame:
    """Up to `per_subset` images with a file per subset, evenly spaced in ImageID order: deterministic and
    spread out."""
    ranked = (
        scan_stored(keys.images)
        .filter(pl.col("path").is_not_null())
        .sort("subset", ImageList.image_id)
        .with_columns(pl.int_range(pl.len()).over("subset").alias("rank"), pl.len().over("subset").alias("n"))
    )
    bucket = pl.col("rank") * per_subset // pl.col("n")
    first_of_bucket = bucket != (pl.col("rank") - 1) * per_subset // pl.col("n")
    return ranked.filter(first_of_bucket).select(ImageList.image_id, "subset", "rotation", "path").collect()


def dataset_stats(layout: Layout, keys: Keys, sample_ids: pl.Series | None = None) -> DatasetStats:
    """Read the boxes, image labels and segmentation CSVs once, in batches; keep the sampled images' rows."""
    subsets = read_stored(keys.images, [ImageList.image_id, "subset"])
    wanted = (sample_ids if sample_ids is not None else pl.Series([], dtype=pl.String)).implode()
    parts: dict[str, list[pl.DataFrame]] = {
        k: [] for k in ("classes", "sizes", "per_image", "labels", "masks", "sample_boxes", "sample_masks")
    }
    for table in layout.tables:
        if table.kind not in ANNOTATIONS:
            continue
        keep = {
            TableKind.boxes: BOX_COLUMNS,
            TableKind.masks: MASK_COLUMNS,
            TableKind.labels: [ImageLabel.image_id, ImageLabel.label_name, ImageLabel.confidence],
        }[table.kind]
        for batch in iter_batches(table, keep=keep):
            rows = _with_subset(batch, subsets, table)
            if table.kind == TableKind.boxes:
                _box_parts(rows, parts, wanted)
            elif table.kind == TableKind.labels:
                positive = pl.col(ImageLabel.confidence).cast(pl.Float64, strict=False) > 0
                parts["labels"].append(
                    rows.group_by("subset").agg(positive.sum().alias("positive"), (~positive).sum().alias("negative"))
                )
                parts["classes"].append(rows.filter(positive).group_by("subset", Box.label_name).len("labels"))
            else:
                parts["masks"].append(rows.group_by("subset").len("masks"))
                parts["sample_masks"].append(
                    rows.filter(pl.col(Segmentation.image_id).is_in(wanted)).select(MASK_COLUMNS)
                )
    return DatasetStats(
        images=dict(keys.images_per_subset),
        classes=_classes(parts["classes"], keys),
        box_sizes=_sum(parts["sizes"], ["subset", "bin"], "boxes"),
        boxes_per_image=_boxes_per_image(parts["per_image"], subsets),
        image_labels=_sum(parts["labels"], ["subset"], "positive", "negative"),
        masks=dict(_sum(parts["masks"], ["subset"], "masks").iter_rows()),
        sample_boxes=_concat(parts["sample_boxes"], BOX_COLUMNS),
        sample_masks=_concat(parts["sample_masks"], MASK_COLUMNS),
    )


def _with_subset(batch: pl.DataFrame, subsets: pl.DataFrame, table: CsvFile) -> pl.DataFrame:
    """Each row's subset is its image's; the file name's (or UNLISTED) for images in no list."""
    joined = batch.join(subsets, on=ImageList.image_id, how="left")
    return joined.with_columns(pl.col("subset").fill_null(table.subset or UNLISTED))


def _box_parts(rows: pl.DataFrame, parts: dict[str, list[pl.DataFrame]], wanted: pl.Expr | pl.Series) -> None:
    coords = [pl.col(c).cast(pl.Float64, strict=False) for c in (Box.x_min, Box.x_max, Box.y_min, Box.y_max)]
    side = ((coords[1] - coords[0]) * (coords[3] - coords[2])).clip(0, 1).sqrt()
    size_bin = (side * SIZE_BINS).floor().clip(0, SIZE_BINS - 1).cast(pl.Int32)
    parts["sizes"].append(
        rows.select("subset", size_bin.alias("bin")).drop_nulls().group_by("subset", "bin").len("boxes")
    )
    parts["classes"].append(rows.group_by("subset", Box.label_name).len("boxes"))
    parts["per_image"].append(rows.group_by(Box.image_id).len("boxes"))
    parts["sample_boxes"].append(rows.filter(pl.col(Box.image_id).is_in(wanted)).select(BOX_COLUMNS))


def _sum(frames: list[pl.DataFrame], by: list[str], *values: str) -> pl.DataFrame:
    if not frames:
        return pl.DataFrame(schema={**{c: pl.String for c in by}, **{v: pl.Int64 for v in values}})
    return pl.concat(frames).group_by(by).agg(pl.col(v).sum().cast(pl.Int64) for v in values).sort(by)


def _concat(frames: list[pl.DataFrame], columns: list[str]) -> pl.DataFrame:
    return pl.concat(frames) if frames else pl.DataFrame(schema={c: pl.String for c in columns})


def _classes(frames: list[pl.DataFrame], keys: Keys) -> pl.DataFrame:
    """Boxes and positive image labels per (subset, class), with the display name (the MID where none is given)."""
    counts = (
        pl.concat(frames, how="diagonal")
        if frames
        else pl.DataFrame(schema={"subset": pl.String, Box.label_name: pl.String})
    )
    for column in ("boxes", "labels"):
        if column not in counts.columns:
            counts = counts.with_columns(pl.lit(0, pl.Int64).alias(column))
    totals = counts.group_by("subset", Box.label_name).agg(pl.col("boxes", "labels").fill_null(0).sum().cast(pl.Int64))
    names = read_stored(keys.labels, [Classes.label_name, Classes.display_name]).unique(Classes.label_name)
    return (
        totals.join(names, on=Box.label_name, how="left")
        .with_columns(pl.col(Classes.display_name).fill_null(pl.col(Box.label_name)))
        .sort(["subset", "boxes", "labels", Box.label_name], descending=[False, True, True, False])
    )


def _boxes_per_image(frames: list[pl.DataFrame], subsets: pl.DataFrame) -> pl.DataFrame:
    """How many images have n boxes, per subset; listed images without boxes count as n = 0."""
    per_image = _sum(frames, [Box.image_id], "boxes")
    everyone = subsets.unique(ImageList.image_id).join(per_image, on=ImageList.image_id, how="full", coalesce=True)
    return (
        everyone.with_columns(pl.col("subset").fill_null(UNLISTED), pl.col("boxes").fill_null(0))
        .group_by("subset", "boxes")
        .len("images")
        .sort("subset", "boxes")
    )
