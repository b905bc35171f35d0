"""One export per destination and name at a time, and a key that turns a repeated run into a no-op.

Two runs for the same DEST/NAME (a doubled event, a double click) take an exclusive `flock` on a
lock file named after DEST/NAME; the kernel drops it when its holder ends, even by SIGKILL, so a
killed run never blocks the next. The second run, once it holds the lock, reads the report the
first one published: same source content (`reuse.source_key`, archives and folders alike) and
parameters (the idempotency key) means it publishes nothing and says so; `reuse=False` forces a new export.
The lock folder must be shared by every worker that writes the same DEST
(`OPENIMAGES_ETL_LOCK_DIR`, default: the system's temp folder), see SECURITY.md.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

import fsspec

from openimages_etl.storage.locations import display_url, is_local, join_url

WORK_PREFIX = ".openimages-etl/work"


def lock_dir() -> Path:
    folder = Path(os.environ.get("OPENIMAGES_ETL_LOCK_DIR") or Path(tempfile.gettempdir()) / "openimages-etl-locks")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def export_lock(dest: str, name: str) -> Iterator[float]:
    """Hold DEST/NAME exclusively for the block; yields the seconds spent waiting for another run."""
    key = hashlib.sha256(join_url(display_url(dest), name).encode()).hexdigest()[:32]
    handle = os.open(lock_dir() / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    started = time.monotonic()
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield round(time.monotonic() - started, 3)
    finally:
        os.close(handle)  # closing the only descriptor releases the lock


def idempotency_key(content_key: str | None, parameters: dict[str, Any]) -> str | None:
    """The source's content key (`reuse.source_key`: every file of an archive or folder) with the run's parameters."""
    if content_key is None:
        return None
    text = json.dumps({"source": content_key, "parameters": parameters}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def published_report(dest: str, name: str, storage_options: dict[str, Any]) -> dict[str, Any] | None:
    """The report of the export already at DEST/NAME, when it is complete (report and every zip it lists there)."""
    fs, path = fsspec.core.url_to_fs(join_url(dest, f"{name}.report.json"), **storage_options)
    try:
        report = json.loads(fs.cat_file(path))
        zips = [f"{name}.zip"] + [f"{name}-{subset}.zip" for subset in report.get("outputs", {})]
        zips_there = all(fs.exists(str(PurePosixPath(path).with_name(z))) for z in zips)
    except (OSError, ValueError, AttributeError):
        return None
    return report if report.get("status") == "published" and zips_there else None


def run_work_dir(dest: str, name: str) -> str:
    """Where runs of DEST/NAME keep their work areas (`<flow-run-id>/` each) when the workers share no disk with the
    client: under DEST, which every worker reaches."""
    return join_url(dest, f"{WORK_PREFIX}/{name}")


def remove_leftovers(dest: str, name: str, storage_options: dict[str, Any]) -> list[str]:
    """What a killed run left at DEST, safe to remove under the lock: partial files (`.NAME*.part-*`) and its
    run-scoped work area (see run_work_dir)."""
    fs, path = fsspec.core.url_to_fs(dest, **storage_options)
    if not fs.isdir(path):
        return []
    if is_local(fs):  # os's glob: fsspec's does not match names that start with a dot
        leftovers = sorted(str(p) for p in Path(path).glob(f".{glob.escape(name)}*.part-*"))
    else:
        leftovers = sorted(
            p
            for p in fs.ls(path, detail=False)
            if PurePosixPath(p).name.startswith(f".{name}") and ".part-" in PurePosixPath(p).name
        )
    work = f"{path.rstrip('/')}/{WORK_PREFIX}/{name}"
    leftovers += sorted(fs.ls(work, detail=False)) if fs.isdir(work) else []
    for leftover in leftovers:
        fs.rm(leftover, recursive=True)
    return leftovers
