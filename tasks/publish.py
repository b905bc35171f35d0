"""Publish: zip the staged export, put it at the destination atomically, write the run report and its pictures."""
from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any

import fsspec
from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from openimages_etl.inline import data_urls
from openimages_etl.layout import Layout
from openimages_etl.package import build_zip
from openimages_etl.progress import UploadProgress
from openimages_etl.report import counts_table, to_json, to_markdown
from openimages_etl.report_visuals import export_visuals, failure_visuals, selection_visuals, to_html, write_visuals
from openimages_etl.reuse import source_key
from openimages_etl.runlock import idempotency_key, published_report, remove_leftovers
from openimages_etl.storage import browser_url, display_url, join_url, publish_file
from openimages_etl.tasks.progress import artifact_key
from openimages_etl.validation import Keys
from openimages_etl.tasks.retries import IO_RETRY_DELAYS, transient_only


@task(name="claim-destination", retries=3, retry_delay_seconds=IO_RETRY_DELAYS,
      retry_condition_fn=transient_only, cache_policy=NONE)
def claim_destination(source: str, source_options: dict[str, Any], dest: str, dest_options: dict[str, Any],
                      parameters: dict[str, Any], waited: float, reuse: bool = True) -> dict[str, Any]:
    """Under the lock: the run's idempotency key, leftovers of killed runs removed, and the export this run
    would repeat (same source content and parameters) under "previous" when DEST already holds it and `reuse`."""
    logger = get_run_logger()
    name = parameters["name"]
    if waited > 1:
        logger.info("Waited %.1f s for another run exporting %s to finish", waited, join_url(display_url(dest), name))
    try:
        content_key = source_key(source, source_options)
    except (OSError, ValueError):
        content_key = None  # fetch-source reports a missing or unreadable source with its own clear error
    key = idempotency_key(content_key, {**parameters, "dest": display_url(dest)})
    run = {"idempotency_key": key, "lock_waited_s": waited, "leftovers_removed": len(remove_leftovers(dest, name, dest_options))}
    if run["leftovers_removed"]:
        logger.info("Removed %d partial files left by an interrupted run", run["leftovers_removed"])
    previous = published_report(dest, name, dest_options) if key and reuse else None
    if previous and previous.get("run", {}).get("idempotency_key") == key:
        run["previous"] = previous
    return run


@task(name="report-unchanged", cache_policy=NONE)
def report_unchanged(run: dict[str, Any], name: str, dest: str, storage_options: dict[str, Any]) -> dict[str, Any]:
    """A repeated run publishes nothing: its report is the published one, marked unchanged, with a note why."""
    previous = run.pop("previous")
    note = (f"Nothing written: the destination already holds this export (same source content and parameters), "
            f"published at {previous['finished']}" + (f"; waited {run['lock_waited_s']} s for that run" if run["lock_waited_s"] > 1 else ""))
    report = {**previous, "status": "unchanged", "note": note, "run": run}
    _artifacts(report, name, storage_options, _published_pictures(report, dest, storage_options))
    get_run_logger().info("%s", note)
    return report


@task(name="package-zip", task_run_name="zip-{name}", cache_policy=NONE)
def package_zip(name: str, subsets: list[str], layout: Layout, keys: Keys,
                columns: dict[str, list[str]], out_dir: Path, package_dir: Path, hierarchy: Path | None = None) -> Path:
    path = build_zip(package_dir / f"{name}.zip", out_dir, layout, keys, columns, subsets, hierarchy)
    get_run_logger().info("Built %s (%.1f MB)", path.name, path.stat().st_size / 1e6)
    return path


@task(name="upload", task_run_name="upload-{local.name}", retries=3, retry_delay_seconds=IO_RETRY_DELAYS,
      retry_condition_fn=transient_only, cache_policy=NONE)
def upload(local: Path, dest: str, storage_options: dict[str, Any]) -> str:
    url = publish_file(local, join_url(dest, local.name), storage_options, UploadProgress())
    get_run_logger().info("Published %s", display_url(url))
    return url


@task(name="write-report", retries=3, retry_delay_seconds=IO_RETRY_DELAYS,
      retry_condition_fn=transient_only, cache_policy=NONE)
def write_report(report: dict[str, Any], name: str, dest: str, storage_options: dict[str, Any], work_dir: Path,
                 package: Path | None = None, layout: Layout | None = None) -> dict[str, Any]:
    """Pictures (drawn from the built zip `package`, and of the failing files in `layout`) and the one-page HTML,
    then JSON and Markdown, all next to the zip (Markdown last: its presence means the run is over), plus UI artifacts.
    Returns the report with its `pictures`."""
    started = time.perf_counter()
    folder = work_dir / "report" / f"{name}.report"
    visuals = export_visuals(str(package), work_dir / "report") if package is not None else []
    if report.get("selection"):
        visuals += selection_visuals(report["selection"])
    if layout is not None and report["errors"]:  # a failed run, or rows left out with --on-invalid drop
        visuals += failure_visuals(layout, report["errors"])
    files = write_visuals(visuals, folder)
    pages = [(".report.html", lambda r: to_html(r, visuals)), (".report.json", to_json),
             (".report.md", lambda r: to_markdown(r, opens=partial(browser_url, storage_options=storage_options)))]
    report = {**report, "pictures": {"html": f"{name}.report.html", "files": files, "seconds": round(time.perf_counter() - started, 3)}}
    for visual in visuals:
        publish_file(folder / visual.file, join_url(dest, f"{folder.name}/{visual.file}"), storage_options)
    for suffix, text in ((suffix, render(report)) for suffix, render in pages):
        local = work_dir / f"{name}{suffix}"
        local.write_text(text, encoding="utf-8")
        publish_file(local, join_url(dest, local.name), storage_options)
    _artifacts(report, name, storage_options, {f"{folder.name}/{v.file}": v.png for v in visuals})
    get_run_logger().info("Report written with %d pictures (drawn in %.1f s): %s", len(visuals), report["pictures"]["seconds"],
                          display_url(join_url(dest, f"{name}.report.md")))
    return report


def _artifacts(report: dict[str, Any], name: str, storage_options: dict[str, Any], pictures: dict[str, bytes]) -> None:
    """The run's page in the UI: the report with its pictures inlined (the UI shows no picture from a path,
    file:// or a bucket), where the zip is, the counts."""
    key = artifact_key(name)
    opens = partial(browser_url, storage_options=storage_options)
    create_markdown_artifact(markdown=to_markdown(report, data_urls(pictures), opens), key=f"{key}-report",
                             description=f"Run report of {name}")
    page = opens(report["output"]) if report["output"] else None
    if page:
        create_link_artifact(link=page, link_text=report["output"].rsplit("/", 1)[-1], key=f"{key}-zip",
                             description=f"The published zip of {name}" + ("" if page == report["output"] else f": {report['output']}"))
    elif report["output"]:  # a link to a path or file:// opens nothing from a web page: the location, to copy
        create_markdown_artifact(markdown=f"**{name}.zip** is published at\n\n```\n{report['output']}\n```\n\n"
                                 "Copy this location: a browser does not open it from a web page.",
                                 key=f"{key}-zip", description=f"Where the published zip of {name} is")
    if report["subsets"]:
        create_table_artifact(table=counts_table(report), key=f"{key}-counts", description=f"Counts per subset of {name}")


def _published_pictures(report: dict[str, Any], dest: str, storage_options: dict[str, Any]) -> dict[str, bytes]:
    """The pictures an earlier run published at DEST (a missing one is left out: the report names it)."""
    pictures = {}
    for file in (p["file"] for p in report.get("pictures", {}).get("files", [])):
        try:
            fs, path = fsspec.core.url_to_fs(join_url(dest, file), **storage_options)
            pictures[file] = fs.cat_file(path)
        except OSError as exc:
            get_run_logger().warning("%s: not shown (%s)", display_url(join_url(dest, file)), exc)
    return pictures
