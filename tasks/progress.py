"""Progress the Prefect UI shows while a long stage runs: a progress artifact moved on as its task runs finish."""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import PrefectFuture, as_completed

R = TypeVar("R")


def artifact_key(name: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes: `openimages-<name>`."""
    return "openimages-" + "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def wait_with_progress(futures: list[PrefectFuture[R]], done: Callable[[R], int], total: int, key: str, description: str) -> list[R]:
    """The futures' results in their order; after each one finishes, the artifact shows `done` so far out of `total`."""
    if not futures:
        return []
    artifact = create_progress_artifact(0.0, key=key, description=description)
    finished = 0
    for future in as_completed(futures):
        finished += done(future.result())
        update_progress_artifact(artifact, min(100.0, 100.0 * finished / max(total, 1)))
    return [future.result() for future in futures]
