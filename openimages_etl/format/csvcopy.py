"""Local copies of a source's CSV files for the tasks that scan them: polars scans local files, and a worker of a
cluster shares no disk with the one that found the file. A copy is taken where it is read, once per scope."""

from __future__ import annotations

import functools
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from openimages_etl.errors import SourceError
from openimages_etl.storage.locations import ARCHIVE_READ_ERRORS, display_url, file_slug, member_path

if TYPE_CHECKING:
    from openimages_etl.format.layout import CsvFile

P, R = ParamSpec("P"), TypeVar("R")
_lock = threading.Lock()  # one copy at a time per process: CSV passes take turns anyway (tables.CSV_PASSES)
_copies: dict[tuple[str, str], str] = {}
_folder: tempfile.TemporaryDirectory | None = None
_scopes = 0


def local_csv(table: CsvFile) -> str:
    """A local file with the CSV's bytes: the file itself for a local folder, else a copy (a remote zip's member read
    by range, a remote object) kept until the last open `csv_copies` scope of the process ends, or the process."""
    if table.local:
        return table.local
    global _folder
    key = (table.root.url, table.path)
    with _lock:
        if key not in _copies:
            _folder = _folder or tempfile.TemporaryDirectory(prefix="openimages-etl-csv-")
            target = Path(_folder.name) / f"{len(_copies)}-{file_slug(table.path)}"
            fs, base = table.root.open_fs()
            try:
                fs.get_file(member_path(base, table.path), str(target))
            except ARCHIVE_READ_ERRORS as exc:
                raise SourceError(
                    f"{display_url(table.root.url)}:{table.path}: corrupt archive member ({type(exc).__name__}: {exc})"
                ) from exc
            _copies[key] = str(target)
        return _copies[key]


@contextmanager
def csv_copies() -> Iterator[None]:
    """A scope of the copies (a flow run in one process, or a task on a Dask worker): they go when the last one ends."""
    global _folder, _scopes
    with _lock:
        _scopes += 1
    try:
        yield
    finally:
        with _lock:
            _scopes -= 1
            if not _scopes and _folder is not None:
                _folder.cleanup()
                _folder = None
                _copies.clear()


def with_csv_copies(fn: Callable[P, R]) -> Callable[P, R]:
    """`fn` run in a `csv_copies` scope: for a task, whose copies on its worker go when it ends. (A plain closure:
    Dask pickles tasks, and a context manager used as a decorator holds a generator, which does not pickle.)"""

    @functools.wraps(fn)
    def scoped(*args: P.args, **kwargs: P.kwargs) -> R:
        with csv_copies():
            return fn(*args, **kwargs)

    return scoped
