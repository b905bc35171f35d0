"""One pandera model per Open Images CSV kind: the columns, their types and the format's rules."""

from __future__ import annotations

from functools import partial

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

# ImageID and MaskPath become paths: the guards of storage.safe_id and storage.safe_name.
from openimages_etl.storage.locations import SAFE_ID, SAFE_NAME

Normalised = partial(pa.Field, ge=0.0, le=1.0, description="Coordinate normalised to [0, 1] of the image side.")
Flag = partial(pa.Field, isin=[-1, 0, 1], description="1 yes, 0 no, -1 unknown.")
ImageId = partial(
    pa.Field, str_matches=SAFE_ID, description="Image file path under its subset folder, without extension."
)
MASK_BOX = ["BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax"]
Label = partial(pa.Field, str_length={"min_value": 1}, description="Class MID such as /m/01g317, or a plain name.")


class ClassDescriptionSchema(pa.DataFrameModel):
    """`class-descriptions.csv` (headerless) or `oidv*-class-descriptions.csv` (with header)."""

    label_name: str = Label(alias="LabelName", unique=True)
    display_name: str = pa.Field(alias="DisplayName", nullable=True, description="Name people see.")


class ImageListSchema(pa.DataFrameModel):
    """`<subset>-images-with-rotation.csv` and the official image lists: one row per image."""

    image_id: str = ImageId(alias="ImageID")  # unique across all lists: checked in validation.build_keys
    subset: str | None = pa.Field(alias="Subset", nullable=True, str_matches=SAFE_NAME)
    original_url: str | None = pa.Field(alias="OriginalURL", nullable=True)
    original_landing_url: str | None = pa.Field(alias="OriginalLandingURL", nullable=True)
    license: str | None = pa.Field(alias="License", nullable=True)
    author_profile_url: str | None = pa.Field(alias="AuthorProfileURL", nullable=True)
    author: str | None = pa.Field(alias="Author", nullable=True)
    title: str | None = pa.Field(alias="Title", nullable=True)
    original_size: float | None = pa.Field(alias="OriginalSize", nullable=True, ge=0)
    original_md5: str | None = pa.Field(alias="OriginalMD5", nullable=True)
    thumbnail_url: str | None = pa.Field(alias="Thumbnail300KURL", nullable=True)
    rotation: float | None = pa.Field(
        alias="Rotation",
        nullable=True,
        isin=[0.0, 90.0, 180.0, 270.0],
        description="Degrees counter-clockwise; empty or nan means 0.",
    )


class BoxSchema(pa.DataFrameModel):
    """`<subset>-annotations-bbox.csv`: 13 columns (V4) or 21 with the XClick points (V6+)."""

    image_id: str = ImageId(alias="ImageID")
    source: str = pa.Field(alias="Source", nullable=True, description="freeform, xclick, activemil, ...")
    label_name: str = Label(alias="LabelName")
    confidence: float = pa.Field(alias="Confidence", ge=0.0, le=1.0, nullable=True)
    x_min: float = Normalised(alias="XMin")
    x_max: float = Normalised(alias="XMax")
    y_min: float = Normalised(alias="YMin")
    y_max: float = Normalised(alias="YMax")
    is_occluded: int = Flag(alias="IsOccluded")
    is_truncated: int = Flag(alias="IsTruncated")
    is_group_of: int = Flag(alias="IsGroupOf")
    is_depiction: int = Flag(alias="IsDepiction")
    is_inside: int = Flag(alias="IsInside")
    x_click_1x: float | None = pa.Field(alias="XClick1X", nullable=True, ge=-1.0, le=1.0)
    x_click_2x: float | None = pa.Field(alias="XClick2X", nullable=True, ge=-1.0, le=1.0)
    x_click_3x: float | None = pa.Field(alias="XClick3X", nullable=True, ge=-1.0, le=1.0)
    x_click_4x: float | None = pa.Field(alias="XClick4X", nullable=True, ge=-1.0, le=1.0)
    x_click_1y: float | None = pa.Field(alias="XClick1Y", nullable=True, ge=-1.0, le=1.0)
    x_click_2y: float | None = pa.Field(alias="XClick2Y", nullable=True, ge=-1.0, le=1.0)
    x_click_3y: float | None = pa.Field(alias="XClick3Y", nullable=True, ge=-1.0, le=1.0)
    x_click_4y: float | None = pa.Field(alias="XClick4Y", nullable=True, ge=-1.0, le=1.0)

    @pa.dataframe_check(name="XMin <= XMax")
    def x_ordered(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("XMin") <= pl.col("XMax"))

    @pa.dataframe_check(name="YMin <= YMax")
    def y_ordered(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("YMin") <= pl.col("YMax"))


class ImageLabelSchema(pa.DataFrameModel):
    """`<subset>-annotations-human-imagelabels.csv`: Confidence 1 = present, 0 = verified absent."""

    image_id: str = ImageId(alias="ImageID")
    source: str = pa.Field(alias="Source", nullable=True)
    label_name: str = Label(alias="LabelName")
    confidence: float = pa.Field(alias="Confidence", ge=0.0, le=1.0)


class SegmentationSchema(pa.DataFrameModel):
    """`<subset>-annotations-object-segmentation.csv`: one row per mask PNG."""

    mask_path: str = pa.Field(
        alias="MaskPath", str_matches=SAFE_NAME, description="Bare PNG file name: <ImageID>_<label>_<BoxID>.png"
    )
    image_id: str = ImageId(alias="ImageID")
    label_name: str = Label(alias="LabelName")
    box_id: str = pa.Field(alias="BoxID", nullable=True)
    # The mask's box: all four empty when the mask has none (Datumaro writes ungrouped masks, as CVAT's polygons, so).
    box_x_min: float = Normalised(alias="BoxXMin", nullable=True)
    box_x_max: float = Normalised(alias="BoxXMax", nullable=True)
    box_y_min: float = Normalised(alias="BoxYMin", nullable=True)
    box_y_max: float = Normalised(alias="BoxYMax", nullable=True)
    predicted_iou: float = pa.Field(alias="PredictedIoU", nullable=True)
    clicks: str = pa.Field(alias="Clicks", nullable=True, description="'x y flag;x y flag' click points")

    @pa.check(*MASK_BOX, name="all four box columns set, or none")
    def box_whole(cls, data: PolarsData) -> pl.LazyFrame:
        """Fails on each empty box column of a row that sets another: Datumaro reads a box only when all four
        are set."""
        return data.lazyframe.select(pl.col(data.key).is_not_null() | pl.all_horizontal(pl.col(MASK_BOX).is_null()))

    @pa.dataframe_check(name="BoxXMin <= BoxXMax")
    def box_x_ordered(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select((pl.col("BoxXMin") <= pl.col("BoxXMax")).fill_null(True))

    @pa.dataframe_check(name="BoxYMin <= BoxYMax")
    def box_y_ordered(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select((pl.col("BoxYMin") <= pl.col("BoxYMax")).fill_null(True))
