"""Every input row and media file ends up published, rejected or not selected: checked before anything is published."""

from __future__ import annotations

from typing import Any

import polars as pl

from openimages_etl.format.validation import Keys, TableCheck
from openimages_etl.media.convert import BatchResult, images_of, mask_jobs
from openimages_etl.output.partition import PartitionResult


def file_rows(result: PartitionResult) -> dict[str, Any]:
    """One input CSV's line of the report."""
    return {
        "file": result.file,
        "kind": result.kind,
        "rows_in": result.rows_in,
        "published": result.published,
        "rejected": result.rejected,
        "not_selected": result.not_selected,
    }


def media_rows(
    keys: Keys, chosen: list[str], segmentations: list[TableCheck], images: list[BatchResult], masks: list[BatchResult]
) -> dict[str, dict[str, int]]:
    """Media files in (counted from the indexes, not from the batches), converted and rejected."""
    images_in = (
        sum(images_of(keys, subset).select(pl.len()).collect().item() for subset in chosen)
        if keys.has_image_files
        else 0
    )
    masks_in = sum(mask_jobs(check, keys).select(pl.len()).collect().item() for check in segmentations)
    return {
        "images": {
            "in": images_in,
            "published": sum(b.converted for b in images),
            "rejected": sum(b.failures.total for b in images),
        },
        "masks": {
            "in": masks_in,
            "published": sum(b.converted for b in masks),
            "rejected": sum(b.failures.total for b in masks),
        },
    }


def unbalanced(files: list[dict[str, Any]], rows_read: dict[str, int], media: dict[str, dict[str, int]]) -> list[str]:
    """What does not add up: each CSV's rows as validated = rows partitioned = published + rejected + not selected,
    and each kind of media in = published + rejected."""
    problems = []
    for row in files:
        out = sum(row["published"].values()) + row["rejected"] + row["not_selected"]
        if not rows_read.get(row["file"]) == row["rows_in"] == out:
            problems.append(
                f"{row['file']}: {rows_read.get(row['file'])} rows validated, {row['rows_in']} partitioned, "
                f"{out} published + rejected + not selected"
            )
    for kind, counts in media.items():
        if counts["in"] != counts["published"] + counts["rejected"]:
            problems.append(
                f"{kind}: {counts['in']} in, {counts['published']} published + {counts['rejected']} rejected"
            )
    return problems
