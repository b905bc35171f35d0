"""Progress the Prefect UI shows while a long stage runs: a progress artifact moved on as its task runs finish."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import PrefectFuture, as_completed

R = TypeVar("R")
UPDATE_EVERY_S = 2.0  # each update is an API call holding the GIL for tens of ms: not one per finished batch


def artifact_key(name: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes: `openimages-<name>`."""
    return "openimages-" + "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def wait_with_progress(
    futures: list[PrefectFuture[R]], done: Callable[[R], int], total: int, key: str, description: str
) -> list[R]:
    """The futures' results in their order; as they finish (every few seconds, and at the end), the artifact
    shows `done` so far out of `total`."""
    if not futures:
        return []
    artifact = create_progress_artifact(0.0, key=key, description=description)
    finished, updated, left = 0, time.monotonic(), len(futures)
    for future in as_completed(futures):
        finished += done(future.result())
        left -= 1
        if not left or time.monotonic() - updated >= UPDATE_EVERY_S:
            update_progress_artifact(artifact, min(100.0, 100.0 * finished / max(total, 1)))
            updated = time.monotonic()
    return [future.result() for future in futures]
