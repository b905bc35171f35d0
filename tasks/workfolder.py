"""The run's temporary work folder, removed only once no task run started on it still runs."""
from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from prefect.futures import PrefectFuture

from openimages_etl.convert import stop_batches

F = TypeVar("F", bound=list[PrefectFuture])


class WorkFolder:
    """A run's scratch folder (`path`, staged output in `out`) and the task runs started on it."""

    def __init__(self, path: Path):
        self.path, self.out = path, path / "out"
        self._started: list[PrefectFuture] = []

    def track(self, futures: F) -> F:
        """Task runs that use the folder: it outlives them."""
        self._started.extend(futures)
        return futures

    def settle(self) -> None:
        """End every task run started on the folder: batches still waiting for their turn skip it (Cancelled),
        the others finish."""
        stop_batches(self.out)
        for future in self._started:
            future.wait()


@contextmanager
def work_folder(parent: str | None = None) -> Iterator[WorkFolder]:
    """A temporary WorkFolder (under `parent` when given). Whatever the flow raises, the folder goes only after its
    task runs have ended: removed under a running task, its cleanup failed (`Directory not empty`) and hid the error."""
    with tempfile.TemporaryDirectory(prefix="openimages-etl-", dir=parent) as tmp:
        folder = WorkFolder(Path(tmp))
        try:
            yield folder
        finally:
            folder.settle()
