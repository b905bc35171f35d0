"""Ledger: which object versions under a prefix are new to the destination, and recording those exported."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from openimages_etl.storage.locations import display_url
from openimages_etl.storage.objects import ObjectVersion, exported_keys, list_objects, record_export, with_digest


@task(name="find-new-archives", retries=2, retry_delay_seconds=[2, 10], cache_policy=NONE)
def find_new_archives(
    source: str, patterns: tuple[str, ...], dest: str, source_options: dict[str, Any], dest_options: dict[str, Any]
) -> list[ObjectVersion]:
    """The listed versions the ledger does not hold. On a store without ETags (a local or NFS folder) a version whose
    size or mtime is new to the ledger is read and known by its bytes: a copy of an exported archive is not new."""
    logger = get_run_logger()
    listed = list_objects(source, patterns, source_options)
    done = exported_keys(dest, dest_options)
    new = []
    for obj in (o for o in listed if o.key not in done):
        if obj.stamped:
            obj = with_digest(obj, source_options)
            if obj.content_key in done:
                logger.info(
                    "%s: same bytes as an exported version, only its mtime changed: not exported again",
                    display_url(obj.url),
                )
                continue
        new.append(obj)
    logger.info("%s: %d archives match %s, %d not exported yet", display_url(source), len(listed), patterns, len(new))
    return new


@task(
    name="record-export",
    task_run_name="record-{obj.version}",
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    cache_policy=NONE,
)
def record_outcome(obj: ObjectVersion, outcome: dict[str, Any], dest: str, dest_options: dict[str, Any]) -> str:
    return record_export(obj, outcome, dest, dest_options)
