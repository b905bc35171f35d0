"""When an I/O task tries again: on transient storage errors only, never on bad input or bugs."""

from __future__ import annotations

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
