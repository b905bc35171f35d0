"""Publish: zip the staged export, put it at the destination atomically, write the run report."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from openimages_etl.layout import Layout
from openimages_etl.package import build_zip
from openimages_etl.report import counts_table, to_json, to_markdown
from openimages_etl.runlock import idempotency_key, published_report, remove_leftovers, source_version
from openimages_etl.storage import display_url, join_url, publish_file
from openimages_etl.validation import Keys
from openimages_etl.tasks.retries import IO_RETRY_DELAYS, transient_only


@task(name="claim-destination", retries=3, retry_delay_seconds=IO_RETRY_DELAYS,
      retry_condition_fn=transient_only, cache_policy=NONE)
def claim_destination(source: str, source_options: dict[str, Any], dest: str, dest_options: dict[str, Any],
                      parameters: dict[str, Any], waited: float) -> dict[str, Any]:
    """Under the lock: the run's idempotency key, leftovers of killed runs removed, and the export this run
    would repeat (same source version and parameters) under "previous" when DEST already holds it."""
    logger = get_run_logger()
    name = parameters["name"]
    if waited > 1:
        logger.info("Waited %.1f s for another run exporting %s to finish", waited, join_url(display_url(dest), name))
    try:
        version = source_version(source, source_options)
    except (OSError, ValueError):
        version = None  # fetch-source reports a missing or unreadable source with its own clear error
    key = idempotency_key(version, {**parameters, "dest": display_url(dest)})
    run = {"idempotency_key": key, "lock_waited_s": waited, "leftovers_removed": len(remove_leftovers(dest, name, dest_options))}
    if run["leftovers_removed"]:
        logger.info("Removed %d partial files left by an interrupted run", run["leftovers_removed"])
    previous = published_report(dest, name, dest_options) if key else None
    if previous and previous.get("run", {}).get("idempotency_key") == key:
        run["previous"] = previous
    return run


@task(name="report-unchanged", cache_policy=NONE)
def report_unchanged(run: dict[str, Any], name: str) -> dict[str, Any]:
    """A repeated run publishes nothing: its report is the published one, marked unchanged, with a note why."""
    previous = run.pop("previous")
    note = (f"Nothing written: the destination already holds this export (same source version and parameters), "
            f"published at {previous['finished']}" + (f"; waited {run['lock_waited_s']} s for that run" if run["lock_waited_s"] > 1 else ""))
    report = {**previous, "status": "unchanged", "note": note, "run": run}
    _artifacts(report, name)
    get_run_logger().info("%s", note)
    return report


@task(name="package-zip", task_run_name="zip-{name}", cache_policy=NONE)
def package_zip(name: str, subsets: list[str], layout: Layout, keys: Keys,
                columns: dict[str, list[str]], out_dir: Path, package_dir: Path) -> Path:
    path = build_zip(package_dir / f"{name}.zip", out_dir, layout, keys, columns, subsets)
    get_run_logger().info("Built %s (%.1f MB)", path.name, path.stat().st_size / 1e6)
    return path


@task(name="upload", task_run_name="upload-{local.name}", retries=3, retry_delay_seconds=IO_RETRY_DELAYS,
      retry_condition_fn=transient_only, cache_policy=NONE)
def upload(local: Path, dest: str, storage_options: dict[str, Any]) -> str:
    url = publish_file(local, join_url(dest, local.name), storage_options)
    get_run_logger().info("Published %s", display_url(url))
    return url


@task(name="write-report", retries=3, retry_delay_seconds=IO_RETRY_DELAYS,
      retry_condition_fn=transient_only, cache_policy=NONE)
def write_report(report: dict[str, Any], name: str, dest: str, storage_options: dict[str, Any], work_dir: Path) -> str:
    """JSON and Markdown next to the zip (Markdown last: its presence means the run is over), plus UI artifacts."""
    markdown = to_markdown(report)
    for suffix, text in ((".report.json", to_json(report)), (".report.md", markdown)):
        local = work_dir / f"{name}{suffix}"
        local.write_text(text, encoding="utf-8")
        publish_file(local, join_url(dest, local.name), storage_options)
    _artifacts(report, name)
    get_run_logger().info("Report written: %s", display_url(join_url(dest, f"{name}.report.json")))
    return join_url(dest, f"{name}.report.json")


def _artifacts(report: dict[str, Any], name: str) -> None:
    key = "openimages-" + "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    create_markdown_artifact(markdown=to_markdown(report), key=f"{key}-report", description=f"Run report of {name}")
    if report["subsets"]:
        create_table_artifact(table=counts_table(report), key=f"{key}-counts", description=f"Counts per subset of {name}")
