"""Convert and partition by subset: images and masks in batches, each CSV split in one pass (or a large one as its
byte ranges on a cluster, merged)."""

from __future__ import annotations

from dataclasses import replace

from prefect import get_run_logger, task
from prefect.cache_policies import NONE
from prefect.runtime import task_run
from prefect.states import Cancelled, State

from openimages_etl.format.csvcopy import with_csv_copies
from openimages_etl.format.csvranges import range_check
from openimages_etl.format.layout import ByteRange
from openimages_etl.format.validation import TableCheck
from openimages_etl.media.convert import BatchRequest, BatchResult, convert_batch
from openimages_etl.orchestration.retries import io_task
from openimages_etl.output.partition import PartitionRequest, PartitionResult, merge_partitions, partition_table


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


def _partition_run_name() -> str:
    within = task_run.parameters.get("within")
    return f"partition-{task_run.parameters['request'].check.table.path}" + (f"-from-{within.start}" if within else "")


@io_task(name="partition-csv", task_run_name=_partition_run_name)
@with_csv_copies  # the CSVs it reads, copied on this worker, go when it ends
def partition_csv(request: PartitionRequest, within: ByteRange | None = None) -> PartitionResult:
    """The request's CSV, or the records of its byte range `within` (see csvranges.range_check)."""
    with range_check(request.check, within) as part:
        result = partition_table(replace(request, check=part))
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
