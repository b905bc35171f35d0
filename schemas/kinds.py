"""The format's table of contents: each kind of Open Images CSV with its pandera model, the file names it is read
from and the name the export writes it under."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

import pandera.polars as pa

from openimages_etl.errors import UnreadableFileError
from openimages_etl.schemas.tables import (
    BoxSchema,
    ClassDescriptionSchema,
    ImageLabelSchema,
    ImageListSchema,
    SegmentationSchema,
)


class TableKind(str, Enum):
    """What an Open Images CSV holds. A `str`, printed as its value, so that it reads as the kind's name anywhere."""

    classes = "classes"
    images = "images"
    boxes = "boxes"
    labels = "labels"
    masks = "masks"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class TableSpec:
    """One kind of CSV: its model, the file names it is found by and the file name it is exported as."""

    model: type[pa.DataFrameModel]
    patterns: tuple[re.Pattern[str], ...]  # on the file name; the subset is the `subset` group (Datumaro's rule)
    output: str  # `{subset}` stands for the subset

    @property
    def columns(self) -> list[str]:
        """Every column of the model, in the format's order."""
        return list(self.model.to_schema().columns)

    @property
    def required(self) -> list[str]:
        """The columns a file of this kind must have (the others are optional, e.g. the V6 boxes' XClick points)."""
        return [name for name, column in self.model.to_schema().columns.items() if column.required]

    def output_name(self, subset: str = "") -> str:
        return self.output.format(subset=subset)


TABLES: dict[TableKind, TableSpec] = {
    TableKind.classes: TableSpec(
        ClassDescriptionSchema,
        (re.compile(r"^(?:oidv\d+-)?class-descriptions(?:-boxable)?\.csv$"),),
        "class-descriptions.csv",
    ),
    TableKind.images: TableSpec(
        ImageListSchema,
        (
            re.compile(r"^(?P<subset>.+?)-images(?:-boxable)?(?:-with-labels)?-with-rotation\.csv$"),
            re.compile(r"^(?:(?P<subset>.+)-)?image_ids_and_rotation\.csv$"),  # the CVAT page's name, input only
        ),
        "{subset}-images-with-rotation.csv",
    ),  # what Datumaro's importer matches
    TableKind.boxes: TableSpec(
        BoxSchema, (re.compile(r"^(?P<subset>.+)-annotations-bbox\.csv$"),), "{subset}-annotations-bbox.csv"
    ),
    TableKind.labels: TableSpec(
        ImageLabelSchema,
        (re.compile(r"^(?P<subset>.+)-annotations-human-imagelabels(?:-boxable)?\.csv$"),),
        "{subset}-annotations-human-imagelabels.csv",
    ),
    TableKind.masks: TableSpec(
        SegmentationSchema,
        (re.compile(r"^(?P<subset>.+)-annotations-object-segmentation\.csv$"),),
        "{subset}-annotations-object-segmentation.csv",
    ),
}
ANNOTATIONS = (TableKind.boxes, TableKind.labels, TableKind.masks)  # the kinds whose rows annotate an image
COUNT_KINDS = (TableKind.images, *ANNOTATIONS)  # what the report counts per subset


def check_header(kind: TableKind, columns: tuple[str, ...], shown: str) -> None:
    """A header must name every required column of its model, each once."""
    if not columns or columns == ("",):
        raise UnreadableFileError(shown, 1, "empty file: no header line")
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise UnreadableFileError(shown, 1, f"header names {duplicated} more than once")
    missing = [name for name in TABLES[kind].required if name not in columns]
    if missing:
        raise UnreadableFileError(shown, 1, f"header lacks required columns {missing}")
