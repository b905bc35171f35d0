"""The export flow's steps between its tasks: the run's settings, batch planning, fan-out, the publish step and the
run's ending (its report, or the failure report). Each returns a typed result; none lists a folder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, NoReturn

from prefect.futures import PrefectFutureList

from openimages_etl.config import Limits, OnInvalid, images_per_task
from openimages_etl.errors import AccountingError, InvalidDataError, UsageError
from openimages_etl.format.failures import FailureSummary
from openimages_etl.format.layout import Layout
from openimages_etl.format.selection import Selection, kept_classes, key_parameters, matching_masks, prune_hierarchy
from openimages_etl.format.validation import Keys, TableCheck
from openimages_etl.media.convert import (
    BatchRequest,
    BatchResult,
    ImageBatch,
    MaskBatch,
    image_batches,
    images_to_convert,
)
from openimages_etl.options import ExportOptions
from openimages_etl.orchestration.credentials import storage_options
from openimages_etl.orchestration.progress import artifact_key, wait_with_progress
from openimages_etl.orchestration.workfolder import WorkFolder
from openimages_etl.output.accounting import file_rows, unbalanced
from openimages_etl.output.package import PublishedZip, Staged
from openimages_etl.output.partition import (
    PartitionRequest,
    PartitionResult,
    Rejected,
    output_columns,
    partition_ranges,
)
from openimages_etl.report.model import build_report
from openimages_etl.schemas.kinds import ANNOTATIONS, COUNT_KINDS, TABLES, TableKind
from openimages_etl.storage.locations import display_url, plain_file_name, url_stem
from openimages_etl.storage.runlock import run_work_dir
from openimages_etl.storage.workarea import StoredFile
from openimages_etl.tasks.convert import convert_images, convert_masks, merge_csv_partitions, partition_csv
from openimages_etl.tasks.publish import package_zip, publish_image_ids, write_report


@dataclass(frozen=True)
class ExportJob:
    """An export's options, read once: locations (as given, and `shown` in full), storage options with the blocks'
    credentials, the limits on untrusted input, and `parameters`, what shapes the zip (part of the idempotency key)."""

    source: str
    options: ExportOptions
    name: str
    parameters: dict[str, Any]
    shown: dict[str, str]
    source_options: dict[str, Any] = field(repr=False)
    dest_options: dict[str, Any] = field(repr=False)
    limits: Limits = Limits()
    started: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @classmethod
    def read(cls, source: str, options: ExportOptions, shown: dict[str, str]) -> ExportJob:
        """`shown` says where source and dest are in full (see flows.export.locations)."""
        name = plain_file_name(options.name or url_stem(source), "export name")
        options.refuse_credentials(source)
        size, spec = options.image_size, options.selection
        parameters = {
            "name": name,
            "image_size": size.value,
            "subsets": sorted(options.subsets),
            "per_subset": options.per_subset,
            "on_invalid": options.on_invalid.value,
            **({"selection": key_parameters(spec)} if spec.active else {}),
            # the method shapes resized images only: exports of originals keep their key
            **({"resize_method": options.resize_method.value} if size.target_pixels else {}),
        }
        return cls(
            source,
            options,
            name,
            parameters,
            shown,
            storage_options(options.source),
            storage_options(options.dest),
            Limits.from_env(),
        )  # the worker's caps (SECURITY.md), read once

    @property
    def dest(self) -> str:
        return self.options.dest.url

    @property
    def drops_invalid(self) -> bool:
        return self.options.on_invalid == OnInvalid.drop

    def work_location(self, task_runner: Any) -> tuple[str | None, dict[str, Any]]:
        """Where the work area goes and its storage options: the `work` option as given; on a Dask scheduler
        elsewhere, a run-scoped prefix under DEST, which every worker reaches; else a local temporary folder (None)."""
        if self.options.work:
            return self.options.work.url, storage_options(self.options.work)
        if getattr(task_runner, "address", None):
            return run_work_dir(self.dest, self.name), self.dest_options
        return None, {}


def choose_subsets(keys: Keys, subsets: list[str] | None) -> list[str]:
    available = sorted(keys.images_per_subset)
    if not subsets:
        return available
    unknown = sorted(set(subsets) - set(available))
    if unknown:
        raise UsageError(f"unknown subsets {unknown}; the source has {available}")
    return sorted(set(subsets))


@dataclass(frozen=True)
class BatchPlan:
    batches: tuple[ImageBatch | MaskBatch, ...] = ()
    images: int = 0  # images to convert in all

    def requests(self, layout: Layout, keys: Keys, work: WorkFolder, limits: Limits) -> list[BatchRequest]:
        return [BatchRequest(batch, layout, keys, work.area, limits) for batch in self.batches]


def plan_image_batches(layout: Layout, keys: Keys, chosen: list[str], options: ExportOptions) -> BatchPlan:
    if not keys.has_image_files:
        return BatchPlan()
    target, method = options.image_size.target_pixels, options.resize_method
    batches = tuple(
        ImageBatch(subset, offset, limit, target, method)
        for subset, offset, limit in image_batches(layout, keys, chosen, target)
    )
    return BatchPlan(batches, images_to_convert(keys, chosen) if batches else 0)


def plan_mask_batches(segmentations: list[TableCheck], images: list[BatchResult]) -> BatchPlan:
    sizes = tuple(i.sizes for i in images)  # masks take the size of their converted image
    return BatchPlan(
        tuple(
            MaskBatch(c, offset, size, sizes)
            for c in segmentations
            for size in [images_per_task(c.rows)]
            for offset in range(0, c.rows, size)
        )
    )


def convert_batches(plan: BatchPlan, layout: Layout, keys: Keys, work: WorkFolder, limits: Limits) -> PrefectFutureList:
    """The plan's batches, a task each of their kind (image and mask tasks keep their own names in the UI)."""
    masks = any(isinstance(batch, MaskBatch) for batch in plan.batches)
    return work.track((convert_masks if masks else convert_images).map(plan.requests(layout, keys, work, limits)))


def output_headers(layout: Layout) -> dict[str, list[str]]:
    """Each kind's output columns, over all its source files."""
    return {kind: output_columns(layout.of_kind(kind)) for kind in TABLES if layout.of_kind(kind)}


def partition_tables(
    tables: list[TableCheck],
    keys: Keys,
    job: ExportJob,
    chosen: list[str],
    columns: dict[str, list[str]],
    work: WorkFolder,
    selection: Selection | None,
    media: tuple[list[BatchResult], list[BatchResult]] = ([], []),
    classes: list[str] | None = None,
) -> PrefectFutureList:
    """One partition task per CSV, or per byte range of a CSV validated as ranges and one more that merges them;
    `media`'s (image, mask) batches name the rows their failures reject."""
    images, masks = media
    subsets = chosen if job.options.subsets else None
    partitions = []
    images_rejected = tuple(i.rejected for i in images)
    for check in tables:
        rejected = Rejected(images_rejected, tuple(m.rejected for m in masks if m.table == check.table.path))
        request = PartitionRequest(
            check, keys, subsets, columns[check.table.kind], work.area, selection, classes, rejected
        )
        ranges = partition_ranges(check, selection)
        if ranges:
            parts = work.track([partition_csv.submit(request, within=r) for r in ranges])
            partitions.append(merge_csv_partitions.submit(check, parts))
        else:
            partitions.append(partition_csv.submit(request))
    return work.track(PrefectFutureList(partitions))


def wait_for_images(converting: PrefectFutureList, plan: BatchPlan, name: str) -> list[BatchResult]:
    """The image batches' results; meanwhile their progress is the run's artifact."""
    return wait_with_progress(
        converting,
        lambda batch: batch.converted + batch.failures.total,
        plan.images,
        f"{artifact_key(name)}-conversion",
        f"Images of {name} converted",
    )


def segmentation_checks(checks: list[TableCheck], selection: Selection | None, work: WorkFolder) -> list[TableCheck]:
    """The segmentation CSVs' verdicts; with a selection, their valid rows cut to the chosen images and classes."""
    masks = [c for c in checks if c.table.kind == TableKind.masks]
    return [matching_masks(c, selection, work.area.sub("selection")) for c in masks] if selection else masks


def partition_selected_classes(
    layout: Layout,
    checks: list[TableCheck],
    keys: Keys,
    job: ExportJob,
    chosen: list[str],
    columns: dict[str, list[str]],
    work: WorkFolder,
    selection: Selection,
    parts: list[PartitionResult],
) -> tuple[list[PartitionResult], StoredFile]:
    """A selection's class list, cut to the classes its kept rows use, and the hierarchy pruned to them."""
    used, hierarchy = prune_hierarchy(layout, kept_classes(selection, parts), work.area.sub("selection"))
    classes = [c for c in checks if c.table.kind == TableKind.classes]
    return partition_tables(classes, keys, job, chosen, columns, work, selection, classes=used).result(), hierarchy


def staged_export(
    keys: Keys,
    images: list[BatchResult],
    masks: list[BatchResult],
    parts: list[PartitionResult],
    columns: dict[str, list[str]],
    chosen: list[str],
    hierarchy,
) -> Staged:
    """What the stages returned, as packaging takes it."""
    headers = {TABLES[kind].output_name(s): cols for kind, cols in columns.items() for s in chosen}
    media: dict[str, int] = {}
    for kind, batches in (("images", images), ("masks", masks)):
        for batch in batches:
            for subset, n in batch.converted_per_subset.items():
                media[f"{kind}/{subset}/"] = media.get(f"{kind}/{subset}/", 0) + n
    return Staged(
        keys,
        tuple(i.sizes for i in images),
        tuple(b.shard for b in [*images, *masks]),
        tuple(part for p in parts for part in p.parts),
        headers,
        hierarchy,
        media,
    )


@dataclass(frozen=True)
class Publication:
    """What a run put at DEST: the zip, one per subset with per_subset, and the image list of a selection."""

    zip: PublishedZip
    per_subset: dict[str, PublishedZip]
    image_ids: dict[str, Any] | None


def publish(
    job: ExportJob, layout: Layout, chosen: list[str], staged: Staged, selection: Selection | None
) -> Publication:
    """Per-subset zips first, the full zip last (its presence means the export is complete), each a task on the task
    runner (on Dask, a worker), packaged where the parts are and put at DEST in one step."""
    image_ids = (
        publish_image_ids(selection, job.name, job.dest, job.dest_options) if selection and selection.images else None
    )
    subsets = chosen if job.options.per_subset else []
    packaging = {
        s: package_zip.submit(f"{job.name}-{s}", [s], layout, staged, job.dest, job.dest_options) for s in subsets
    }
    per_subset = {s: future.result() for s, future in packaging.items()}
    full = package_zip.submit(job.name, chosen, layout, staged, job.dest, job.dest_options).result()
    return Publication(full, per_subset, image_ids)


@dataclass(frozen=True)
class RunEnd:
    """What every ending of a run reports: its job, claim, layout and selection summary."""

    job: ExportJob
    run: dict[str, Any]
    layout: Layout
    work: WorkFolder
    selected: dict[str, Any] | None

    def report(
        self,
        status: str,
        failures: FailureSummary,
        files: Sequence[dict] = (),
        subsets: dict | None = None,
        media: dict | None = None,
        published: Publication | None = None,
    ) -> dict[str, Any]:
        job, zip_url = self.job, published.zip.url if published else None
        selected = (
            {**self.selected, "image_ids": published.image_ids} if published and published.image_ids else self.selected
        )
        report = build_report(
            status=status,
            source=display_url(job.source),
            output=display_url(zip_url) if zip_url else None,
            outputs={s: display_url(z.url) for s, z in published.per_subset.items()} if published else {},
            image_size=job.options.image_size.value,
            resize_method=job.parameters.get("resize_method"),
            started=job.started,
            finished=datetime.now(timezone.utc),
            subsets=subsets or {},
            files=list(files),
            failures=failures,
            media=media,
            run=self.run,
            selection=selected,
            layout={"tables": [t.path for t in self.layout.tables], "ignored": len(self.layout.ignored)},
        )
        return write_report(report, job.name, job.dest, job.dest_options, self.work.path, zip_url, self.layout)

    def fail(self, failures: FailureSummary) -> NoReturn:
        """Invalid data with on_invalid fail: the failure report, nothing published."""
        self.work.settle()  # batches still to come are not worth running now
        self.report("failed", failures)
        raise InvalidDataError(
            f"{display_url(self.job.source)}: {failures.total} failures, nothing published",
            failures.samples,
            failures.total,
        )

    def check_accounting(
        self,
        failures: FailureSummary,
        parts: list[PartitionResult],
        checks: list[TableCheck],
        media: dict[str, dict[str, int]],
    ) -> list[dict]:
        """Every row and media file published, rejected or not selected; returns the report's file rows."""
        files = [file_rows(p) for p in parts]
        problems = unbalanced(files, {c.table.path: c.rows for c in checks}, media)
        if problems:
            self.report("failed", failures, files, media=media)
            raise AccountingError(
                f"{display_url(self.job.source)}: counts do not add up, nothing published: " + "; ".join(problems)
            )
        return files

    def with_selection(self, selected: dict[str, Any] | None) -> RunEnd:
        return replace(self, selected=selected)


def subset_counts(
    chosen: list[str], images: list[BatchResult], parts: list[PartitionResult]
) -> dict[str, dict[str, int]]:
    counts = {s: {kind.value: 0 for kind in COUNT_KINDS} for s in chosen}
    for batch in images:
        for subset, converted in batch.converted_per_subset.items():
            counts[subset][TableKind.images] += converted
    for part in parts:
        if part.kind in ANNOTATIONS or (part.kind == TableKind.images and not images):
            for subset, rows in part.published.items():  # annotation-only export: the image lists say how many items
                counts[subset][part.kind] += rows
    return counts
