"""The export flow: fetch -> validate -> convert and partition by subset -> check -> publish -> report.

0. claim-destination: under a lock on DEST/NAME, stop if DEST already holds this very export (same content key
   of the source, archive or folder, and same parameters; `reuse=False` exports again).
1. fetch-source / discover-layout: open the archive or folder through fsspec, find its files.
2. index-dataset / select-images / validate-csv: key tables and checks across files; with selection parameters, the
   images and classes to keep (one pass over the annotations); then one pandera pass per CSV.
3. convert-images / convert-masks / partition-csv: per subset, in batches, into the run's work area (a local folder
   or any fsspec URL); each task returns references to the files it wrote, which the next ones take (flows/stages.py).
   Images convert while the CSVs validate; partitioning runs beside the media when nothing is dropped.
4. every row and media file accounted for; package-zip: each zip streamed from exactly the referenced files into DEST
   where the task runs, checked against them, and put in place in one step; write-report: the report and its pictures.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, unmapped
from prefect.context import FlowRunContext
from prefect.futures import PrefectFutureList
from prefect.runtime import deployment

from openimages_etl.config import FAILURES_KEPT_PER_CHECK, Limits
from openimages_etl.errors import InvalidDataError
from openimages_etl.flows.scaleout import worker_slots
from openimages_etl.flows.stages import (
    ExportJob,
    RunEnd,
    choose_subsets,
    convert_batches,
    output_headers,
    partition_selected_classes,
    partition_tables,
    plan_image_batches,
    plan_mask_batches,
    publish,
    segmentation_checks,
    staged_export,
    subset_counts,
    wait_for_images,
)
from openimages_etl.format.csvcopy import csv_copies
from openimages_etl.format.csvranges import byte_ranges
from openimages_etl.format.failures import FailureSummary
from openimages_etl.format.layout import Layout
from openimages_etl.format.selection import selection_summary
from openimages_etl.format.validation import Keys, TableCheck
from openimages_etl.options import ExportOptions, ValidateOptions
from openimages_etl.orchestration.credentials import storage_options
from openimages_etl.orchestration.heap import bound_the_heap
from openimages_etl.orchestration.outcomes import fails_cleanly
from openimages_etl.orchestration.workfolder import WorkFolder, work_folder
from openimages_etl.output.accounting import media_rows
from openimages_etl.progress import CONVERT, advance
from openimages_etl.schemas.kinds import TableKind
from openimages_etl.storage.locations import absolute_location, display_url, join_url
from openimages_etl.storage.runlock import export_lock
from openimages_etl.tasks.fetch import discover_layout, fetch_source
from openimages_etl.tasks.publish import claim_destination, report_unchanged
from openimages_etl.tasks.select import select_images
from openimages_etl.tasks.validate import index_dataset, merge_csv_ranges, validate_csv, validate_csv_range


def index_source(source: str, storage_options: dict[str, Any], work: WorkFolder, limits: Limits) -> tuple[Layout, Keys]:
    """Step 1 and the key tables of step 2, shared by both flows."""
    root = fetch_source(source, storage_options, work.area, limits)
    layout = discover_layout(root, work.area, limits)
    return layout, index_dataset(layout, work.area)


def validate_tables(
    layout: Layout, keys: Keys, work: WorkFolder, keep: int = FAILURES_KEPT_PER_CHECK
) -> PrefectFutureList:
    """Step 2's pass per CSV; `keep` failing rows of each check are reported, all are counted. On Dask a large CSV
    goes as byte ranges, one task each, whose verdicts one more task merges."""
    checks, slots = [], worker_slots()
    for table in layout.tables:
        ranges = byte_ranges(table, slots)
        if len(ranges) == 1:
            checks.append(validate_csv.submit(table, layout, keys, work.area, keep))
            continue
        parts = work.track(
            validate_csv_range.map(
                unmapped(table),
                [a for a, _ in ranges],
                [b for _, b in ranges],
                unmapped(layout),
                unmapped(keys),
                unmapped(work.area),
                unmapped(keep),
            )
        )
        checks.append(merge_csv_ranges.submit(table, parts, layout, keys, work.area, keep))
    return work.track(PrefectFutureList(checks))


def locations(**urls: str) -> dict[str, str]:
    """Each location in full, as the run's log states it. A relative path is refused in a deployment run (typed into
    the UI's form, it would land under the worker's folder, which nobody filling in the form knows)."""
    from_deployment = deployment.id is not None
    return {what: absolute_location(url, what, relative_ok=not from_deployment) for what, url in urls.items()}


def all_failures(keys: Keys, checks: list[TableCheck]) -> FailureSummary:
    return FailureSummary.merge([keys.failures, *(c.failures for c in checks)])


@flow(name="validate-open-images")
@fails_cleanly
def validate_open_images(source: str, options: ValidateOptions = ValidateOptions()) -> dict[str, Any]:
    """Check a dataset against the format without writing anything; raises InvalidDataError listing every failure.

    Args:
        source: Archive (.zip, .tar, .tar.gz) or folder: absolute local path or fsspec URL (s3://, gs://, memory://).
        options: How to reach the source, where the work area is, and how many failing rows to list.
    """
    options.refuse_credentials(source)
    get_run_logger().info("Validating %s", locations(source=source)["source"])
    work_at = (options.work.url, storage_options(options.work)) if options.work else (None, {})
    with work_folder(*work_at) as work, csv_copies():  # copies of the source's CSVs taken in this process go at the end
        layout, keys = index_source(source, storage_options(options.source), work, Limits.from_env())
        checks = validate_tables(layout, keys, work, options.max_errors).result()
        failures = all_failures(keys, checks)
    summary = {
        "source": display_url(source),
        "images": keys.images_per_subset,
        "rows": {c.table.path: c.rows for c in checks},
    }
    if failures.total:
        raise InvalidDataError(f"{display_url(source)}: {failures.total} failures", failures.samples, failures.total)
    return summary


@flow(name="export-open-images")
@fails_cleanly
def export_open_images(source: str, options: ExportOptions) -> dict[str, Any]:
    """Validate an Open Images dataset and publish it as a CVAT-importable zip with a run report.

    Args:
        source: Archive (.zip, .tar, .tar.gz) or folder: absolute local path or fsspec URL (s3://, gs://, memory://).
        options: Where the export goes and what it holds (each field is described in the form).
    """
    bound_the_heap()  # tasks may run in this process's threads (no Dask)
    job = ExportJob.read(source, options, locations(source=source, dest=options.dest.url))
    logger = get_run_logger()
    logger.info("Exporting %s to %s", job.shown["source"], join_url(job.shown["dest"], f"{job.name}.zip"))
    # 0. One run at a time per DEST/NAME; a run repeating a published export (same content and parameters) stops here.
    with export_lock(job.dest, job.name) as waited:
        run = claim_destination(
            job.source, job.source_options, job.dest, job.dest_options, job.parameters, waited, job.options.reuse
        )
        if run.get("previous"):
            return report_unchanged(run, job.name, job.dest, job.dest_options)
        with work_folder(*job.work_location(FlowRunContext.get().task_runner)) as work, csv_copies():
            # 1-2. the source's files and key tables; a selection's images, before anything is read for the export
            layout, keys = index_source(job.source, job.source_options, work, job.limits)
            chosen, spec = choose_subsets(keys, list(job.options.subsets)), job.options.selection
            selection = select_images(layout, keys, spec, chosen, work.area) if spec.active else None
            media_keys = selection.keys if selection else keys  # the chosen images only: others are never read
            end = RunEnd(job, run, layout, work, selection_summary(selection) if selection else None)
            # 2-3. validation (polars, native threads) and image conversion (mostly Python) run side by side
            validating = validate_tables(layout, keys, work)
            plan = plan_image_batches(layout, media_keys, chosen, job.options)
            advance(CONVERT, total=plan.images)
            converting = convert_batches(plan, layout, media_keys, work, job.limits)
            checks = validating.result()
            failures = all_failures(keys, checks)
            if failures.total and not job.drops_invalid:
                end.fail(failures)
            columns = output_headers(layout)
            # a selection's class list goes last: it keeps the classes that the kept rows use
            first = [c for c in checks if not (selection and c.table.kind == TableKind.classes)]
            # Partition beside the media, unless rows of media that fail to convert are to be left out (drop).
            early = None if job.drops_invalid else partition_tables(first, keys, job, chosen, columns, work, selection)
            images = wait_for_images(converting, plan, job.name)
            segmentations = segmentation_checks(checks, selection, work)
            mask_plan = plan_mask_batches(segmentations, images)
            masks = convert_batches(mask_plan, layout, media_keys, work, job.limits).result()
            media_failures = FailureSummary.merge([b.failures for b in [*images, *masks]])
            failures = FailureSummary.merge([failures, media_failures])
            if media_failures.total and not job.drops_invalid:
                end.fail(failures)
            late = early or partition_tables(first, keys, job, chosen, columns, work, selection, (images, masks))
            parts, hierarchy = late.result(), None  # the package takes the source's hierarchy, unless pruned
            if selection:
                classes, hierarchy = partition_selected_classes(
                    layout, checks, keys, job, chosen, columns, work, selection, parts
                )
                parts += classes
                end = end.with_selection(selection_summary(selection, parts))
            # 4. every row and file accounted for, then the zips packaged where their parts are, put at DEST, the report
            media = media_rows(media_keys, chosen, segmentations, images, masks)
            files = end.check_accounting(failures, parts, checks, media)
            staged = staged_export(media_keys, images, masks, parts, columns, chosen, hierarchy)
            published = publish(job, layout, chosen, staged, selection)
            report = end.report("published", failures, files, subset_counts(chosen, images, parts), media, published)
            logger.info("Published %s", report["output"])
            return report
