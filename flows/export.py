"""The export flow: fetch -> validate -> convert and partition by subset -> publish -> report.

0. claim-destination: under a lock on DEST/NAME, stop if DEST already holds this very export (same content key
   of the source, archive or folder, and same parameters; `reuse=False` exports again).
1. fetch-source / discover-layout: open the archive or folder through fsspec, find its files.
2. index-dataset / select-images / validate-csv: key tables and checks across files; with selection parameters, the
   images and classes to keep (one pass over the annotations); then one pandera pass per CSV.
3. convert-images / convert-masks / partition-csv: per subset, in batches, into a staging folder
   (images convert while the CSVs validate; partitioning runs beside the media when nothing is dropped).
4. package-zip / upload / write-report: the zip built locally, put at DEST in one step, then the report and its pictures.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, unmapped
from prefect.futures import PrefectFutureList
from prefect.runtime import deployment

from openimages_etl.accounting import file_rows, media_rows, unbalanced
from openimages_etl.config import FAILURES_KEPT_PER_CHECK, Limits, OnInvalid, images_per_task
from openimages_etl.convert import BatchResult, image_batches, images_to_convert
from openimages_etl.errors import AccountingError, InvalidDataError, UsageError
from openimages_etl.failures import FailureSummary
from openimages_etl.layout import Layout
from openimages_etl.options import ExportOptions, ValidateOptions
from openimages_etl.partition import output_columns
from openimages_etl.progress import CONVERT, advance
from openimages_etl.report import build_report
from openimages_etl.runlock import export_lock
from openimages_etl.schemas.kinds import TABLES
from openimages_etl.selection import (key_parameters, kept_classes, matching_masks, prune_hierarchy,
                                      selection_summary, write_image_ids)
from openimages_etl.storage import absolute_location, display_url, join_url, plain_file_name, url_stem
from openimages_etl.tasks.convert import convert_images, convert_masks, partition_csv
from openimages_etl.tasks.credentials import storage_options
from openimages_etl.tasks.fetch import discover_layout, fetch_source
from openimages_etl.tasks.outcomes import fails_cleanly
from openimages_etl.tasks.progress import artifact_key, wait_with_progress
from openimages_etl.tasks.select import select_images
from openimages_etl.tasks.publish import claim_destination, package_zip, report_unchanged, upload, write_report
from openimages_etl.tasks.validate import index_dataset, validate_csv
from openimages_etl.tasks.workfolder import WorkFolder, work_folder
from openimages_etl.validation import Keys, TableCheck


def index_source(source: str, storage_options: dict[str, Any], work: Path, limits: Limits) -> tuple[Layout, Keys]:
    """Step 1 and the key tables of step 2, shared by both flows."""
    root = fetch_source(source, storage_options, work, limits)
    layout = discover_layout(root, work, limits)
    return layout, index_dataset(layout, work)


def validate_tables(layout: Layout, keys: Keys, work: WorkFolder, keep: int = FAILURES_KEPT_PER_CHECK) -> PrefectFutureList:
    """Step 2's pass per CSV; `keep` failing rows of each check are reported, all are counted."""
    return work.track(validate_csv.map(list(layout.tables), unmapped(layout), unmapped(keys), unmapped(work.path), unmapped(keep)))


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
        options: How to reach the source, and how many failing rows to list.
    """
    options.refuse_credentials(source)
    get_run_logger().info("Validating %s", locations(source=source)["source"])
    limits = Limits.from_env()
    with work_folder() as work:
        layout, keys = index_source(source, storage_options(options.source), work.path, limits)
        checks = validate_tables(layout, keys, work, options.max_errors).result()
        failures = all_failures(keys, checks)
    summary = {"source": display_url(source), "images": keys.images_per_subset, "rows": {c.table.path: c.rows for c in checks}}
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
    started = datetime.now(timezone.utc)
    name = plain_file_name(options.name or url_stem(source), "export name")
    options.refuse_credentials(source)
    dest, image_size, resize_method = options.dest.url, options.image_size, options.resize_method
    subsets, per_subset, on_invalid = list(options.subsets) or None, options.per_subset, options.on_invalid
    spec = options.selection
    reuse, work_dir = options.reuse, options.work and options.work.url
    at = locations(source=source, dest=dest)
    source_options, dest_options = storage_options(options.source), storage_options(options.dest)
    limits = Limits.from_env()  # the worker's caps on untrusted input (SECURITY.md), read once per run
    target_pixels = image_size.target_pixels
    parameters = {"name": name, "image_size": image_size.value, "subsets": sorted(subsets or []),
                  "per_subset": per_subset, "on_invalid": on_invalid.value}
    if spec.active:
        parameters["selection"] = key_parameters(spec)
    if target_pixels:  # the method shapes resized images only: exports of originals keep their key
        parameters["resize_method"] = resize_method.value
    logger = get_run_logger()
    logger.info("Exporting %s to %s", at["source"], join_url(at["dest"], f"{name}.zip"))
    # One run at a time per DEST/NAME; a run repeating a published export (same source content and parameters) stops here.
    with export_lock(dest, name) as waited, work_folder(work_dir) as work:
        run = claim_destination(source, source_options, dest, dest_options, parameters, waited, reuse)
        if run.get("previous"):
            return report_unchanged(run, name, dest, dest_options)
        out = work.out
        layout, keys = index_source(source, source_options, work.path, limits)
        chosen = _choose_subsets(keys, subsets)
        failures = keys.failures
        selection = select_images(layout, keys, spec, chosen, work.path) if spec.active else None  # before anything is read for the export
        media_keys = selection.keys if selection else keys  # the chosen images only: others are never read
        selected = selection_summary(selection) if selection else None

        def finish(status: str, outputs: dict[str, str], files: list[dict], subset_counts: dict, media: dict | None = None,
                   package: Path | None = None) -> dict[str, Any]:
            report = build_report(
                status=status, source=display_url(source), output=outputs.pop("*", None), outputs=outputs,
                image_size=image_size.value, resize_method=parameters.get("resize_method"),
                started=started, finished=datetime.now(timezone.utc),
                subsets=subset_counts, files=files, failures=failures, media=media, run=run, selection=selected,
                layout={"tables": [t.path for t in layout.tables], "ignored": len(layout.ignored)})
            return write_report(report, name, dest, dest_options, work.path, package, layout)

        def fail() -> None:
            work.settle()  # batches still to come are not worth running now
            finish("failed", {}, [], {})
            raise InvalidDataError(f"{display_url(source)}: {failures.total} failures, nothing published", failures.samples, failures.total)

        # 2-3. validation (polars, native threads) and image conversion (mostly Python) run side by side
        validating = validate_tables(layout, keys, work)
        batches = image_batches(layout, media_keys, chosen, target_pixels) if keys.has_image_files else []
        to_convert = images_to_convert(media_keys, chosen) if batches else 0
        advance(CONVERT, total=to_convert)
        converting = work.track(convert_images.map([s for s, _, _ in batches], [o for _, o, _ in batches], [n for _, _, n in batches], unmapped(layout),
                                                   unmapped(media_keys), unmapped(out), unmapped(target_pixels), unmapped(resize_method),
                                                   unmapped(limits)))
        checks = validating.result()
        failures = all_failures(keys, checks)
        if failures.total and on_invalid == OnInvalid.fail:
            fail()
        columns = {kind: output_columns(layout.of_kind(kind)) for kind in TABLES if layout.of_kind(kind)}

        def partition(tables: list[TableCheck], classes: list[str] | None = None):
            return work.track(partition_csv.map(tables, unmapped(keys), unmapped(subsets and chosen), [columns[c.table.kind] for c in tables],
                                                unmapped(out), unmapped(selection), unmapped(classes)))

        # A selection keeps the classes that the kept rows use: the class list is partitioned after the others.
        first = [c for c in checks if not (selection and c.table.kind == "classes")]

        # With --on-invalid drop, rows of images and masks that fail to convert are left out: partition after them.
        partitioning = partition(first) if on_invalid == OnInvalid.fail else None
        images = wait_with_progress(converting, lambda batch: batch.converted + batch.failures.total, to_convert,
                                    f"{artifact_key(name)}-conversion", f"Images of {name} converted")
        segmentations = [matching_masks(c, selection, work.path) if selection else c for c in checks if c.table.kind == "masks"]
        mask_batches = [(c, o, size) for c in segmentations for size in [images_per_task(c.rows)] for o in range(0, c.rows, size)]
        masks = work.track(convert_masks.map([c for c, _, _ in mask_batches], [o for _, o, _ in mask_batches], [n for _, _, n in mask_batches],
                                             unmapped(layout), unmapped(media_keys), unmapped(out), unmapped(limits))).result()
        media_failures = FailureSummary.merge([b.failures for b in [*images, *masks]])
        failures = FailureSummary.merge([failures, media_failures])
        if media_failures.total and on_invalid == OnInvalid.fail:
            fail()
        parts = (partitioning or partition(first)).result()
        hierarchy = None  # the package takes the source's, unless a selection pruned it
        if selection:
            used, hierarchy = prune_hierarchy(layout, kept_classes(selection, parts), work.path / "hierarchy.json")
            parts += partition([c for c in checks if c.table.kind == "classes"], used).result()
            selected = selection_summary(selection, parts)
        files, media = [file_rows(p) for p in parts], media_rows(media_keys, chosen, segmentations, images, masks)
        problems = unbalanced(files, {c.table.path: c.rows for c in checks}, media)
        if problems:
            finish("failed", {}, files, {}, media)
            raise AccountingError(f"{display_url(source)}: counts do not add up, nothing published: " + "; ".join(problems))

        # 4. publish: per-subset zips first, the full zip last, then the report
        headers = {TABLES[kind].output_name(s): cols for kind, cols in columns.items() for s in chosen}
        bundles = {s: [s] for s in chosen} if per_subset else {}
        bundles["*"] = chosen
        outputs = {}
        if selection and selection.images:  # the list that reproduces this export (--image-ids), beside the zip
            listed = write_image_ids(selection, work.path / "package" / f"{name}.image-ids.csv")
            selected["image_ids"] = {**listed, "url": display_url(upload(Path(listed["path"]), dest, dest_options))}
        for key, members in bundles.items():
            zip_name = name if key == "*" else f"{name}-{key}"
            local = package_zip(zip_name, members, layout, media_keys, headers, out, work.path / "package", hierarchy)
            outputs[key] = display_url(upload(local, dest, dest_options))
        report = finish("published", outputs, files, _subset_counts(chosen, images, parts), media, package=local)
        logger.info("Published %s", report["output"])
        return report


def _choose_subsets(keys: Keys, subsets: list[str] | None) -> list[str]:
    available = sorted(keys.images_per_subset)
    if not subsets:
        return available
    unknown = sorted(set(subsets) - set(available))
    if unknown:
        raise UsageError(f"unknown subsets {unknown}; the source has {available}")
    return sorted(set(subsets))


def _subset_counts(chosen: list[str], images: list[BatchResult], parts) -> dict[str, dict[str, int]]:
    counts = {s: {"images": 0, "boxes": 0, "labels": 0, "masks": 0} for s in chosen}
    for batch in images:
        counts[batch.subset]["images"] += batch.converted
    for part in parts:
        if part.kind in ("boxes", "labels", "masks"):
            for subset, rows in part.published.items():
                counts[subset][part.kind] += rows
    if not images:  # annotation-only export: the image lists say how many items
        for part in parts:
            if part.kind == "images":
                for subset, rows in part.published.items():
                    counts[subset]["images"] += rows
    return counts
