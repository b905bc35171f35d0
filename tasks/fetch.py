"""Fetch: make the source readable and find its Open Images files."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger

from openimages_etl.config import Limits
from openimages_etl.format.layout import Layout, discover
from openimages_etl.orchestration.retries import io_task
from openimages_etl.storage.locations import DatasetRoot, display_url, stage_source
from openimages_etl.storage.workarea import WorkArea


@io_task(name="fetch-source")
def fetch_source(source: str, storage_options: dict[str, Any], work: WorkArea, limits: Limits) -> DatasetRoot:
    root = stage_source(source, storage_options, work.url, limits, work.storage_options)
    get_run_logger().info("Source %s readable as %s", display_url(source), display_url(root.url))
    return root


@io_task(name="discover-layout")
def discover_layout(root: DatasetRoot, work: WorkArea, limits: Limits) -> Layout:
    layout = discover(root, work.sub("index"), limits)
    logger = get_run_logger()
    logger.info("Found %d CSV files: %s", len(layout.tables), ", ".join(t.path for t in layout.tables))
    if layout.ignored:
        logger.info(
            "Ignored %d files that are not part of the format (e.g. %s)", len(layout.ignored), layout.ignored[0]
        )
    return layout
