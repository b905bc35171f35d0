"""Validate: the key tables and checks across files, then every CSV through its pandera model."""

from __future__ import annotations

from prefect import get_run_logger

from openimages_etl.format.csvcopy import with_csv_copies
from openimages_etl.format.csvranges import merged_check, validate_range
from openimages_etl.format.layout import CsvFile, Layout
from openimages_etl.format.validation import Keys, TableCheck, build_keys, validate_table
from openimages_etl.orchestration.retries import io_task
from openimages_etl.storage.workarea import WorkArea


@io_task(name="index-dataset")
@with_csv_copies  # the CSVs it reads, copied on this worker, go when it ends
def index_dataset(layout: Layout, work: WorkArea) -> Keys:
    keys = build_keys(layout, work)
    get_run_logger().info(
        "Images per subset: %s; %d problems across files", keys.images_per_subset, keys.failures.total
    )
    return keys


@io_task(name="validate-csv", task_run_name="validate-{table.path}")
@with_csv_copies  # the CSVs it reads, copied on this worker, go when it ends
def validate_csv(table: CsvFile, layout: Layout, keys: Keys, work: WorkArea, keep: int) -> TableCheck:
    check = validate_table(layout, table, keys, work, keep)
    _log_check(check)
    return check


def _log_check(check: TableCheck) -> None:
    logger = get_run_logger()
    logger.info("%s: %d rows, %d failures", check.table.path, check.rows, check.failures.total)
    for failure in check.failures.samples[:5]:
        logger.warning("%s", failure)


@io_task(name="validate-csv-range", task_run_name="validate-{table.path}-from-{start}")
def validate_csv_range(
    table: CsvFile, start: int, end: int, layout: Layout, keys: Keys, work: WorkArea, keep: int
) -> TableCheck | None:
    check = validate_range(layout, table, start, end, keys, work, keep)
    get_run_logger().info(
        "%s bytes %d-%d: %s",
        table.path,
        start,
        end,
        f"{check.rows} rows, {check.failures.total} failures" if check else "not readable alone: the file goes whole",
    )
    return check


@io_task(name="merge-csv-ranges", task_run_name="validate-{table.path}")
@with_csv_copies
def merge_csv_ranges(
    table: CsvFile, parts: list[TableCheck | None], layout: Layout, keys: Keys, work: WorkArea, keep: int
) -> TableCheck:
    check = merged_check(layout, table, parts, keys, work, keep)
    _log_check(check)
    return check
