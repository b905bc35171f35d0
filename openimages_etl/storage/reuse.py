"""Incremental re-runs: a content key of the source, the half of the idempotency key (runlock.py) that the source gives.

The key covers every file of the source by path, size and version stamp (ETag, else modification
time; the bytes' hash for small files that have neither), so a folder source is covered as well as an archive.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import fsspec

from openimages_etl.storage.locations import is_local, local_files

SMALL_FILE = 16 << 20  # files without a stamp are hashed up to this size
STAMPS = ("ETag", "etag", "md5Hash", "mtime", "LastModified", "updated", "created")


def source_key(source: str, storage_options: dict[str, Any]) -> str:
    """A hex digest that changes when any file of the source (archive or folder) changes."""
    fs, path = fsspec.core.url_to_fs(source, **storage_options)
    if is_local(fs) and os.path.isdir(path):  # the common case at scale, listed without fsspec's cost per file
        entries = [
            (entry.path[len(path) :], stat.st_size, str(stat.st_mtime))
            for entry in local_files(path)
            for stat in [entry.stat()]
        ]
        return _digest(entries)
    infos = fs.find(path, detail=True) if fs.isdir(path) else {path: fs.info(path)}
    entries = []
    for name, info in infos.items():
        stamp = next((str(info[k]) for k in STAMPS if info.get(k) is not None), None)
        if stamp is None and (info.get("size") or 0) <= SMALL_FILE:
            stamp = hashlib.sha256(fs.cat_file(name)).hexdigest()
        entries.append((name[len(path) :], info.get("size"), stamp))
    return _digest(entries)


def _digest(entries: list[tuple[str, int | None, str | None]]) -> str:
    return hashlib.sha256(json.dumps(sorted(entries)).encode()).hexdigest()
