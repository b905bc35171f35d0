"""Ledger: which object versions under a prefix are new to the destination, and recording those exported."""
from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from openimages_etl.objects import ObjectVersion, exported_keys, list_objects, record_export
from openimages_etl.storage import display_url


@task(name="find-new-archives", retries=2, retry_delay_seconds=[2, 10], cache_policy=NONE)
def find_new_archives(source: str, patterns: tuple[str, ...], dest: str, source_options: dict[str, Any],
                      dest_options: dict[str, Any]) -> list[ObjectVersion]:
    listed = list_objects(source, patterns, source_options)
    done = exported_keys(dest, dest_options)
    new = [o for o in listed if o.key not in done]
    get_run_logger().info("%s: %d archives match %s, %d not exported yet", display_url(source), len(listed), patterns, len(new))
    return new


@task(name="record-export", task_run_name="record-{obj.version}", retries=3, retry_delay_seconds=[2, 10, 30], cache_policy=NONE)
def record_outcome(obj: ObjectVersion, outcome: dict[str, Any], dest: str, dest_options: dict[str, Any]) -> str:
    return record_export(obj, outcome, dest, dest_options)
