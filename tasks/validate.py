"""Validate: the key tables and checks across files, then every CSV through its pandera model."""
from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from openimages_etl.layout import CsvFile, Layout
from openimages_etl.validation import Keys, TableCheck, build_keys, validate_table
from openimages_etl.tasks.retries import IO_RETRY_DELAYS, transient_only
from openimages_etl.csvcopy import with_csv_copies


@task(name="index-dataset", retries=2, retry_delay_seconds=IO_RETRY_DELAYS,
      retry_condition_fn=transient_only, cache_policy=NONE)
@with_csv_copies  # the CSVs it reads, copied on this worker, go when it ends
def index_dataset(layout: Layout, work_dir: Path) -> Keys:
    keys = build_keys(layout, work_dir)
    get_run_logger().info("Images per subset: %s; %d problems across files", keys.images_per_subset, keys.failures.total)
    return keys


@task(name="validate-csv", task_run_name="validate-{table.path}", retries=2, retry_delay_seconds=IO_RETRY_DELAYS,
      retry_condition_fn=transient_only, cache_policy=NONE)
@with_csv_copies  # the CSVs it reads, copied on this worker, go when it ends
def validate_csv(table: CsvFile, layout: Layout, keys: Keys, work_dir: Path, keep: int) -> TableCheck:
    check = validate_table(layout, table, keys, work_dir, keep)
    logger = get_run_logger()
    logger.info("%s: %d rows, %d failures", table.path, check.rows, check.failures.total)
    for failure in check.failures.samples[:5]:
        logger.warning("%s", failure)
    return check
