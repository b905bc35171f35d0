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

from openimages_etl.format.csvcopy import with_csv_copies
from openimages_etl.format.layout import Layout
from openimages_etl.format.selection import Selection, image_id_list
from openimages_etl.orchestration.progress import artifact_key
from openimages_etl.orchestration.retries import io_task
from openimages_etl.output.package import PublishedZip, Staged, package
from openimages_etl.progress import UploadProgress
from openimages_etl.report.inline import data_urls
from openimages_etl.report.model import Pictures, RunInfo, RunReport, read_report, to_json
from openimages_etl.report.pages import to_html, to_markdown
from openimages_etl.report.pictures import export_visuals, failure_visuals, selection_visuals, write_visuals
from openimages_etl.storage.locations import browser_url, display_url, join_url, publish_file, publishing
from openimages_etl.storage.reuse import source_key
from openimages_etl.storage.runlock import idempotency_key, published_report, remove_leftovers


@io_task(name="claim-destination", retries=3)
def claim_destination(
    source: str,
    source_options: dict[str, Any],
    dest: str,
    dest_options: dict[str, Any],
    parameters: dict[str, Any],
    waited: float,
    reuse: bool = True,
) -> dict[str, Any]:
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
    run = {
        "idempotency_key": key,
        "lock_waited_s": waited,
        "leftovers_removed": len(remove_leftovers(dest, name, dest_options)),
    }
    if run["leftovers_removed"]:
        logger.info("Removed %d partial files left by an interrupted run", run["leftovers_removed"])
    previous = published_report(dest, name, dest_options) if key and reuse else None
    if previous and previous.get("run", {}).get("idempotency_key") == key:
        run["previous"] = previous
    return run


@task(name="report-unchanged", cache_policy=NONE)
def report_unchanged(run: dict[str, Any], name: str, dest: str, storage_options: dict[str, Any]) -> dict[str, Any]:
    """A repeated run publishes nothing: its report is the published one, marked unchanged, with a note why."""
    previous = read_report(run.pop("previous"))
    note = (
        f"Nothing written: the destination already holds this export (same source content and parameters), "
        f"published at {previous.finished.isoformat(timespec='seconds')}"
        + (f"; waited {run['lock_waited_s']} s for that run" if run["lock_waited_s"] > 1 else "")
    )
    report = previous.model_copy(update={"status": "unchanged", "note": note, "run": RunInfo(**run)})
    _artifacts(report, name, storage_options, _published_pictures(report, dest, storage_options))
    get_run_logger().info("%s", note)
    return report.as_dict()


@io_task(name="package-zip", task_run_name="zip-{name}", retries=3)
def package_zip(
    name: str, subsets: list[str], layout: Layout, staged: Staged, dest: str, storage_options: dict[str, Any]
) -> PublishedZip:
    """DEST/NAME.zip of `subsets`, streamed from the work area where the task runs (a Dask worker on a cluster),
    checked, then put in place in one step (storage.publishing): DEST shows the whole zip or nothing new."""
    url = join_url(dest, f"{name}.zip")
    with publishing(url, storage_options) as partial:
        members = package(partial, staged, layout, subsets, UploadProgress())
        size = partial.fs.size(partial.path)
    get_run_logger().info("Published %s (%.1f MB, %d files)", display_url(url), size / 1e6, members)
    return PublishedZip(url, size, members)


@io_task(name="publish-image-ids", retries=3)
def publish_image_ids(selection: Selection, name: str, dest: str, storage_options: dict[str, Any]) -> dict[str, Any]:
    """DEST/NAME.image-ids.csv, the list that reproduces this export (--image-ids); returns its line of the report."""
    data, listed = image_id_list(selection)
    url = join_url(dest, f"{name}.image-ids.csv")
    with publishing(url, storage_options) as partial, partial.open("wb") as out:
        out.write(data)
    return {**listed, "url": display_url(url)}


@io_task(name="write-report", retries=3)
@with_csv_copies  # the CSVs it reads, copied on this worker, go when it ends
def write_report(
    report: RunReport,
    name: str,
    dest: str,
    storage_options: dict[str, Any],
    work_dir: Path,
    package: str | None = None,
    layout: Layout | None = None,
) -> dict[str, Any]:
    """Pictures (drawn from the published zip at URL `package`, and of the failing files in `layout`) and the
    one-page HTML, then JSON and Markdown, all next to the zip (Markdown last: its presence means the run is over),
    plus UI artifacts.
    Returns the report with its `pictures`, as NAME.report.json holds it."""
    started = time.perf_counter()
    folder = work_dir / "report" / f"{name}.report"
    visuals = export_visuals(package, work_dir / "report", storage_options) if package is not None else []
    if report.selection:
        visuals += selection_visuals(report.selection)
    if layout is not None and report.errors:  # a failed run, or rows left out with --on-invalid drop
        visuals += failure_visuals(layout, report.errors)
    files = write_visuals(visuals, folder)
    pngs = {picture.file: visual.png for picture, visual in zip(files, visuals)}
    report = report.model_copy(
        update={
            "pictures": Pictures(
                html=f"{name}.report.html", files=files, seconds=round(time.perf_counter() - started, 3)
            )
        }
    )
    for visual in visuals:
        publish_file(folder / visual.file, join_url(dest, f"{folder.name}/{visual.file}"), storage_options)
    opens = partial(browser_url, storage_options=storage_options)
    pages = {
        ".report.html": to_html(report, pngs, opens),
        ".report.json": to_json(report),
        ".report.md": to_markdown(report, opens=opens),
    }
    for suffix, text in pages.items():
        local = work_dir / f"{name}{suffix}"
        local.write_text(text, encoding="utf-8")
        publish_file(local, join_url(dest, local.name), storage_options)
    _artifacts(report, name, storage_options, pngs)
    get_run_logger().info(
        "Report written with %d pictures (drawn in %.1f s): %s",
        len(visuals),
        report.pictures.seconds,
        display_url(join_url(dest, f"{name}.report.md")),
    )
    return report.as_dict()


def _artifacts(report: RunReport, name: str, storage_options: dict[str, Any], pictures: dict[str, bytes]) -> None:
    """The run's page in the UI: the report with its pictures inlined (the UI shows no picture from a path,
    file:// or a bucket), where the zip is, the counts."""
    key = artifact_key(name)
    opens = partial(browser_url, storage_options=storage_options)
    create_markdown_artifact(
        markdown=to_markdown(report, data_urls(pictures), opens),
        key=f"{key}-report",
        description=f"Run report of {name}",
    )
    page = opens(report.output) if report.output else None
    if page:
        where = "" if page == report.output else f": {report.output}"
        create_link_artifact(
            link=page,
            link_text=report.output.rsplit("/", 1)[-1],
            key=f"{key}-zip",
            description=f"The published zip of {name}{where}",
        )
    elif report.output:  # a link to a path or file:// opens nothing from a web page: the location, to copy
        create_markdown_artifact(
            markdown=f"**{name}.zip** is published at\n\n```\n{report.output}\n```\n\n"
            "Copy this location: a browser does not open it from a web page.",
            key=f"{key}-zip",
            description=f"Where the published zip of {name} is",
        )
    if report.subsets:
        create_table_artifact(
            table=report.counts_table(), key=f"{key}-counts", description=f"Counts per subset of {name}"
        )


def _published_pictures(report: RunReport, dest: str, storage_options: dict[str, Any]) -> dict[str, bytes]:
    """The pictures an earlier run published at DEST (a missing one is left out: the report names it)."""
    pictures = {}
    for file in (p.file for p in report.pictures.files) if report.pictures else ():
        try:
            fs, path = fsspec.core.url_to_fs(join_url(dest, file), **storage_options)
            pictures[file] = fs.cat_file(path)
        except OSError as exc:
            get_run_logger().warning("%s: not shown (%s)", display_url(join_url(dest, file)), exc)
    return pictures
