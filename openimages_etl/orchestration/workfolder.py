"""The run's work area and local scratch folder, removed only once no task run started on them still runs."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from prefect.futures import PrefectFuture
from prefect.runtime import flow_run

from openimages_etl.storage.workarea import WorkArea, is_plain_path

F = TypeVar("F", bound=list[PrefectFuture])


class WorkFolder:
    """The work area tasks hand files over in (`area`: a local folder or any fsspec URL), the client's local scratch
    folder (`path`: the staged source, the report's pictures), and the task runs started on them."""

    def __init__(self, area: WorkArea, path: Path):
        self.area, self.path = area, path
        self._started: list[PrefectFuture] = []

    def track(self, futures: F) -> F:
        """Task runs that use the folder: it outlives them."""
        self._started.extend(futures)
        return futures

    def settle(self) -> None:
        """End every task run started on the folder: batches still waiting for their turn skip it (Cancelled),
        the others finish."""
        try:
            self.area.stop()
        except (
            OSError
        ):  # the store is unreachable: batches yet to start find out themselves, and the error at hand stays
            pass
        for future in self._started:
            future.wait()


@contextmanager
def work_folder(parent: str | None = None, storage_options: dict[str, Any] | None = None) -> Iterator[WorkFolder]:
    """A temporary WorkFolder: its area in a new folder under `parent` (a local path or fsspec URL; the local scratch
    folder when None), named after the flow run. Whatever the flow raises, the area goes only after its task runs
    have ended: removed under a running task, its cleanup failed (`Directory not empty`) and hid the error."""
    local_parent = parent if parent and is_plain_path(parent) else None
    if local_parent:
        os.makedirs(local_parent, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="openimages-etl-", dir=local_parent) as tmp:
        remote = parent is not None and not is_plain_path(parent)
        area = (
            WorkArea(f"{parent.rstrip('/')}/{flow_run.id or uuid.uuid4().hex}", storage_options or {})
            if remote
            else WorkArea(tmp)
        )
        folder = WorkFolder(area, Path(tmp))
        try:
            yield folder
        finally:
            folder.settle()
            if remote:
                area.remove()
