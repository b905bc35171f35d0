"""Incremental re-runs: a content key of the source, and the earlier export at the destination it matches.

The key covers every file of the source by path, size and version stamp (ETag, else modification
time; the bytes' hash for small files that have neither). The destination's report records the key
and the options of the export it describes: when both match and every zip is still there, the
export is already done.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

import fsspec

from .storage import join_url

SMALL_FILE = 16 << 20  # files without a stamp are hashed up to this size
STAMPS = ("ETag", "etag", "md5Hash", "mtime", "LastModified", "updated", "created")


def source_key(source: str, storage_options: dict[str, Any]) -> str:
    """A hex digest that changes when any file of the source (archive or folder) changes."""
    fs, path = fsspec.core.url_to_fs(source, **storage_options)
    infos = fs.find(path, detail=True) if fs.isdir(path) else {path: fs.info(path)}
    entries = []
    for name in sorted(infos):
        info = infos[name]
        stamp = next((str(info[k]) for k in STAMPS if info.get(k) is not None), None)
        if stamp is None and (info.get("size") or 0) <= SMALL_FILE:
            stamp = hashlib.sha256(fs.cat_file(name)).hexdigest()
        entries.append((name[len(path):], info.get("size"), stamp))
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def earlier_export(dest: str, name: str, storage_options: dict[str, Any], key: str, options: dict[str, Any]) -> dict | None:
    """The report at DEST/NAME.report.json if it is a published export of the same source key with the same
    options, and every zip it lists is still at the destination; else None."""
    fs, report_path = fsspec.core.url_to_fs(join_url(dest, f"{name}.report.json"), **storage_options)
    if not fs.exists(report_path):
        return None
    try:
        report = json.loads(fs.cat_file(report_path))
    except ValueError:
        return None
    if report.get("status") != "published" or report.get("source_key") != key or report.get("options") != options:
        return None
    zips = [f"{name}.zip"] + [f"{name}-{subset}.zip" for subset in report.get("outputs", {})]
    if not all(fs.exists(fsspec.core.url_to_fs(join_url(dest, z), **storage_options)[1]) for z in zips):
        return None
    return report
