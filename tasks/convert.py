"""Convert and partition by subset: images and masks in batches, each CSV split in one pass."""

from __future__ import annotations

from prefect import get_run_logger
from prefect.states import Cancelled, State

from openimages_etl.format.csvcopy import with_csv_copies
from openimages_etl.media.convert import BatchRequest, BatchResult, convert_batch
from openimages_etl.orchestration.retries import io_task
from openimages_etl.output.partition import PartitionRequest, PartitionResult, partition_table


@io_task(name="convert-images", task_run_name="images-{request.batch.subset}-{request.batch.offset}")
def convert_images(request: BatchRequest) -> BatchResult | State:
    return _converted(request)


@io_task(name="convert-masks", task_run_name="masks-{request.batch.offset}")
def convert_masks(request: BatchRequest) -> BatchResult | State:
    return _converted(request)


def _converted(request: BatchRequest) -> BatchResult | State:
    """The batch's result, logged; Cancelled when the run stopped before its turn (a new state each time: the engine
    fills it in)."""
    result = convert_batch(request)
    if result is None:
        return Cancelled(message="the run stopped before this batch had its turn")
    batch = request.batch
    get_run_logger().info(
        "%s %d-%d: %d converted, %.1f MB, %d failed",
        batch.label,
        batch.offset,
        batch.offset + batch.limit,
        result.converted,
        result.bytes_written / 1e6,
        result.failures.total,
    )
    return result


@io_task(name="partition-csv", task_run_name="partition-{request.check.table.path}")
@with_csv_copies  # the CSVs it reads, copied on this worker, go when it ends
def partition_csv(request: PartitionRequest) -> PartitionResult:
    result = partition_table(request)
    get_run_logger().info(
        "%s: %s rows per subset, %d rejected", request.check.table.path, result.published, result.rejected
    )
    return result
