"""Convert and partition by subset: images and masks in batches, each CSV split in one pass."""

from __future__ import annotations

from prefect import get_run_logger
from prefect.states import Cancelled, State

from openimages_etl.config import Limits, ResizeMethod
from openimages_etl.format.csvcopy import with_csv_copies
from openimages_etl.format.layout import Layout
from openimages_etl.format.selection import Selection
from openimages_etl.format.validation import Keys, TableCheck
from openimages_etl.media.convert import BatchResult, convert_image_batch, convert_mask_batch
from openimages_etl.orchestration.retries import io_task
from openimages_etl.output.partition import PartitionResult, Rejected, partition_table
from openimages_etl.storage.workarea import StoredFile, WorkArea


def _not_started() -> State:
    """A batch's end when the run stopped before its turn (a new state each time: the engine fills it in)."""
    return Cancelled(message="the run stopped before this batch had its turn")


@io_task(name="convert-images", task_run_name="images-{subset}-{offset}")
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


@io_task(name="convert-masks", task_run_name="masks-{offset}")
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


@io_task(name="partition-csv", task_run_name="partition-{check.table.path}")
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
) -> PartitionResult:
    result = partition_table(check, keys, subsets, columns, work, selection, classes, rejected)
    get_run_logger().info("%s: %s rows per subset, %d rejected", check.table.path, result.published, result.rejected)
    return result
