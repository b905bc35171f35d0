"""When an I/O task tries again: on transient storage errors only, never on bad input or bugs."""

from __future__ import annotations

from functools import partial

from prefect import task
from prefect.cache_policies import NONE

from openimages_etl.errors import is_transient

# Seconds before each new try; the storage client (s3fs/botocore) has already retried quick blips itself.
IO_RETRY_DELAYS = [2, 10, 30]


def transient_only(task, task_run, state) -> bool:
    """Prefect's `retry_condition_fn`: retry when the failure is a network blip, throttling or a 5xx."""
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - the state's own exception, classified below
        return is_transient(exc)
    return False


# A task that reads or writes storage: `@io_task(name=..., retries=3)`. It tries again after a transient error only,
# and caches nothing: its inputs and results are references to files of one run's work area.
io_task = partial(
    task, retries=2, retry_delay_seconds=IO_RETRY_DELAYS, retry_condition_fn=transient_only, cache_policy=NONE
)
