"""Each pandera model on good and bad rows, through the same typing step the pipeline uses."""

from __future__ import annotations

import polars as pl
import pytest

from openimages_etl.format.tables import LINE, check_batch, typed

GOOD = {
    "classes": {"LabelName": "/m/01g317", "DisplayName": "Person"},
    "images": {"ImageID": "000002b66c9c498e", "Subset": "train", "OriginalSize": "2038323", "Rotation": "90.0"},
    "boxes": {
        "ImageID": "000002b66c9c498e",
        "Source": "xclick",
        "LabelName": "/m/01g317",
        "Confidence": "1",
        "XMin": "0.0125",
        "XMax": "0.195312",
        "YMin": "0.148438",
        "YMax": "0.5875",
        "IsOccluded": "0",
        "IsTruncated": "1",
        "IsGroupOf": "0",
        "IsDepiction": "-1",
        "IsInside": "0",
        "XClick1X": "-1",
    },
    "labels": {"ImageID": "000002b66c9c498e", "Source": "verification", "LabelName": "/m/014j1m", "Confidence": "0"},
    "masks": {
        "MaskPath": "000002b66c9c498e_m01g317_0a4b1e4c.png",
        "ImageID": "000002b66c9c498e",
        "LabelName": "/m/01g317",
        "BoxID": "0a4b1e4c",
        "BoxXMin": "0.1",
        "BoxXMax": "0.2",
        "BoxYMin": "0.3",
        "BoxYMax": "0.4",
        "PredictedIoU": "0.86",
        "Clicks": "0.1 0.2 1;0.3 0.4 0",
    },
}

# (kind, changes to the good row, expected (column, check) among the failures)
BAD = [
    ("classes", {"LabelName": None}, ("LabelName", "not_nullable")),
    ("images", {"ImageID": "../etc/passwd"}, ("ImageID", "str_matches")),
    ("images", {"Rotation": "45"}, ("Rotation", "isin")),
    ("images", {"Subset": "a/b"}, ("Subset", "str_matches")),
    ("images", {"Subset": "a..b"}, ("Subset", "str_matches")),
    ("boxes", {"XMin": "1.2"}, ("XMin", "less_than_or_equal_to")),
    ("boxes", {"YMax": "-0.1"}, ("YMax", "greater_than_or_equal_to")),
    ("boxes", {"XMin": "0.9", "XMax": "0.1"}, (None, "XMin <= XMax")),
    ("boxes", {"YMin": "0.9", "YMax": "0.1"}, (None, "YMin <= YMax")),
    ("boxes", {"IsOccluded": "2"}, ("IsOccluded", "isin")),
    ("boxes", {"IsGroupOf": "yes"}, ("IsGroupOf", "is an integer")),
    ("boxes", {"XMax": "abc"}, ("XMax", "is a number")),
    ("boxes", {"XMin": "nan"}, ("XMin", "not_nullable")),
    ("boxes", {"Confidence": "1.5"}, ("Confidence", "less_than_or_equal_to")),
    ("boxes", {"XClick1X": "3"}, ("XClick1X", "less_than_or_equal_to")),
    ("labels", {"Confidence": "-1"}, ("Confidence", "greater_than_or_equal_to")),
    ("labels", {"LabelName": ""}, ("LabelName", "not_nullable")),
    ("masks", {"MaskPath": "../x.png"}, ("MaskPath", "str_matches")),
    ("masks", {"MaskPath": "a..b.png"}, ("MaskPath", "str_matches")),
    ("masks", {"BoxXMax": "7"}, ("BoxXMax", "less_than_or_equal_to")),
    ("masks", {"BoxYMin": "", "BoxYMax": ""}, ("BoxYMin", "all four box columns set, or none")),
    ("masks", {"BoxXMin": "0.5", "BoxXMax": "0.4"}, (None, "BoxXMin <= BoxXMax")),
    ("masks", {"BoxYMin": "0.5", "BoxYMax": "0.4"}, (None, "BoxYMin <= BoxYMax")),
]


def _failures(kind: str, row: dict) -> set[tuple]:
    row = {k: (None if v == "" else v) for k, v in row.items()}  # the CSV reader reads empty cells as null
    frame = pl.DataFrame([row], schema={k: pl.String for k in row}).with_columns(pl.lit(2, pl.Int64).alias(LINE))
    frame, parse = typed(frame, kind)
    found = pl.concat([parse, check_batch(frame, kind)])
    assert found.is_empty() or set(found.get_column("row")) == {2}
    return {(c, check.split("(")[0]) for c, check in found.select("column", "check").iter_rows()}


@pytest.mark.parametrize("kind", sorted(GOOD))
def test_good_rows_pass(kind):
    assert _failures(kind, GOOD[kind]) == set()


@pytest.mark.parametrize(("kind", "changes", "expected"), BAD, ids=[f"{k}-{list(c)[0]}" for k, c, _ in BAD])
def test_bad_rows_fail_with_the_rule_named(kind, changes, expected):
    assert expected in _failures(kind, {**GOOD[kind], **changes})


def test_empty_rotation_and_nan_rotation_mean_zero():
    assert _failures("images", {**GOOD["images"], "Rotation": None}) == set()
    assert _failures("images", {**GOOD["images"], "Rotation": "nan"}) == set()


def test_mask_box_columns_all_empty_pass_and_partly_empty_name_each_empty_column():
    empty = dict.fromkeys(["BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax"], "")
    assert _failures("masks", {**GOOD["masks"], **empty}) == set()  # an ungrouped mask, as Datumaro writes it
    assert _failures("masks", {**GOOD["masks"], **empty, "BoxXMax": "0.2"}) == {
        (column, "all four box columns set, or none") for column in ("BoxXMin", "BoxYMin", "BoxYMax")
    }
