"""Convert and partition by subset: images and masks in batches, each CSV split in one pass (or a large one as its
byte ranges on a cluster, merged)."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NONE
from prefect.runtime import task_run
from prefect.states import Cancelled, State

from openimages_etl.config import Limits, ResizeMethod
from openimages_etl.format.csvcopy import with_csv_copies
from openimages_etl.format.csvranges import range_check
from openimages_etl.format.layout import Layout
from openimages_etl.format.selection import Selection
from openimages_etl.format.validation import ByteRange, Keys, TableCheck
from openimages_etl.media.convert import BatchResult, convert_image_batch, convert_mask_batch
from openimages_etl.orchestration.retries import IO_RETRY_DELAYS, transient_only
from openimages_etl.output.partition import PartitionResult, Rejected, merge_partitions, partition_table
from openimages_etl.storage.workarea import StoredFile, WorkArea


def _not_started() -> State:
    """A batch's end when the run stopped before its turn (a new state each time: the engine fills it in)."""
    return Cancelled(message="the run stopped before this batch had its turn")


@task(
    name="convert-images",
    task_run_name="images-{subset}-{offset}",
    retries=2,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=transient_only,
    cache_policy=NONE,
)
def convert_images(
    subset: str,
    offset: int,
    limit: int,
    layout: Layout,
    keys: Keys,
    work: WorkArea,
    target_pixels: int | None,
    resize_method: ResizeMethod,
    limits: Limits,
) -> BatchResult | State:
    result = convert_image_batch(layout, keys, subset, offset, limit, work, target_pixels, resize_method, limits)
    if result is None:
        return _not_started()
    get_run_logger().info(
        "%s images %d-%d: %d converted, %.1f MB, %d failed",
        subset,
        offset,
        offset + limit,
        result.converted,
        result.bytes_written / 1e6,
        result.failures.total,
    )
    return result


@task(
    name="convert-masks",
    task_run_name="masks-{offset}",
    retries=2,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=transient_only,
    cache_policy=NONE,
)
def convert_masks(
    check: TableCheck,
    offset: int,
    limit: int,
    layout: Layout,
    keys: Keys,
    work: WorkArea,
    sizes: list[StoredFile],
    limits: Limits,
) -> BatchResult | State:
    result = convert_mask_batch(layout, keys, check, offset, limit, work, sizes, limits)
    if result is None:
        return _not_started()
    get_run_logger().info(
        "%s masks %d-%d: %d converted, %d failed",
        check.table.path,
        offset,
        offset + limit,
        result.converted,
        result.failures.total,
    )
    return result


def _partition_run_name() -> str:
    within = task_run.parameters.get("within")
    return f"partition-{task_run.parameters['check'].table.path}" + (f"-from-{within.start}" if within else "")


@task(
    name="partition-csv",
    task_run_name=_partition_run_name,
    retries=2,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=transient_only,
    cache_policy=NONE,
)
@with_csv_copies  # the CSVs it reads, copied on this worker, go when it ends
def partition_csv(
    check: TableCheck,
    keys: Keys,
    subsets: list[str] | None,
    columns: list[str],
    work: WorkArea,
    selection: Selection | None = None,
    classes: list[str] | None = None,
    rejected: Rejected = Rejected(),
    within: ByteRange | None = None,
) -> PartitionResult:
    """`check`'s CSV, or the records of its byte range `within` (see csvranges.range_check)."""
    with range_check(check, within) as part:
        result = partition_table(part, keys, subsets, columns, work, selection, classes, rejected)
    _log_partition(result, f" bytes {within.start}-{within.end}" if within else "")
    return result


@task(name="merge-csv-partitions", task_run_name="partition-{check.table.path}", cache_policy=NONE)
def merge_csv_partitions(check: TableCheck, ranges: list[PartitionResult]) -> PartitionResult:
    result = merge_partitions(check, ranges)
    _log_partition(result, "")
    return result


def _log_partition(result: PartitionResult, where: str) -> None:
    get_run_logger().info(
        "%s%s: %s rows per subset, %d rejected", result.file, where, result.published, result.rejected
    )
