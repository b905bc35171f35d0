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
from openimages_etl.storage import display_url, join_url, publish_file
from openimages_etl.validation import Keys
from openimages_etl.tasks.retries import IO_RETRY_DELAYS, transient_only


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
    key = "openimages-" + "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    create_markdown_artifact(markdown=markdown, key=f"{key}-report", description=f"Run report of {name}")
    if report["subsets"]:
        create_table_artifact(table=counts_table(report), key=f"{key}-counts", description=f"Counts per subset of {name}")
    get_run_logger().info("Report written: %s", display_url(join_url(dest, f"{name}.report.json")))
    return join_url(dest, f"{name}.report.json")
