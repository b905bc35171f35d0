"""Object versions under a prefix, and the destination's ledger of which versions were already exported.

An object version is its URL plus what the store says identifies its bytes (an ETag on S3 and GCS,
size and mtime elsewhere): the watcher, the relay and the incremental flow all name an upload the same
way, so the same upload seen twice is recognised wherever it is seen. Where there is no ETag, the ledger
also knows an exported version by the SHA-256 of its bytes, so a copy with a new mtime is not exported again.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from fnmatch import fnmatch
from pathlib import PurePosixPath
from typing import Any

import fsspec

from openimages_etl.errors import SourceError
from openimages_etl.storage.locations import ARCHIVE_KINDS, display_url, join_url

ARCHIVE_PATTERNS = tuple(f"*{suffix}" for suffix in ARCHIVE_KINDS)  # every archive that fetch-source opens
LEDGER_DIR = ".openimages-etl/exported"
DIGEST_CHUNK = 8 << 20
# uuid5 namespace for event ids: one id per object version, whichever bridge saw it.
_EVENT_NAMESPACE = uuid.UUID("6f0c51f4-2b0e-4c43-9a55-5c1c0c7f3e21")


@dataclass(frozen=True)
class ObjectVersion:
    """One version of one object: `version` is the normalised ETag, or `size-mtime` where there is none (`stamped`:
    a copy of the same bytes gets a new one); `digest`, the SHA-256 of the bytes, is filled in for a stamped version
    that the ledger's stamps do not know (see `with_digest`)."""

    url: str
    version: str
    size: int | None = None
    stamped: bool = False
    digest: str | None = None

    @property
    def key(self) -> str:
        """A file-name-safe digest of URL and version: the ledger's entry name."""
        return _key(self.url, self.version)

    @property
    def content_key(self) -> str | None:
        """The key of URL and bytes, when the digest is known: how a stamped version is recognised after a copy."""
        return None if self.digest is None else _key(self.url, f"sha256:{self.digest}")

    @property
    def event_id(self) -> uuid.UUID:
        """The same id for the same object version, so the Prefect server drops a repeated event."""
        return uuid.uuid5(_EVENT_NAMESPACE, f"{self.url}\n{self.version}")


def _key(url: str, version: str) -> str:
    return hashlib.sha256(f"{url}\n{version}".encode()).hexdigest()[:32]


def with_digest(obj: ObjectVersion, storage_options: dict[str, Any] | None = None) -> ObjectVersion:
    """`obj` with the SHA-256 of its bytes (read once, in chunks)."""
    digest = hashlib.sha256()
    with fsspec.open(obj.url, "rb", **(storage_options or {})) as stream:
        while chunk := stream.read(DIGEST_CHUNK):
            digest.update(chunk)
    return replace(obj, digest=digest.hexdigest())


def normalise_etag(etag: str) -> str:
    """`"abc"` and `W/"abc"` (as listings show them) -> `abc` (as bucket notifications send it)."""
    return etag.strip().removeprefix("W/").strip('"').lower()


def _etag(info: dict[str, Any]) -> str | None:
    return info.get("ETag") or info.get("etag")


def version_of(info: dict[str, Any]) -> str:
    """The version of an object from an fsspec `info()` dict, for S3, GCS, local and memory file systems."""
    etag = _etag(info)
    if etag:
        return normalise_etag(str(etag))
    stamp = info.get("mtime") or info.get("LastModified") or info.get("updated") or info.get("created")
    if isinstance(stamp, datetime):
        stamp = stamp.timestamp()
    return f"{info.get('size')}-{stamp}"


def matches(url: str, patterns: Iterable[str]) -> bool:
    """Whether the object's file name matches one of the glob patterns."""
    name = PurePosixPath(url.rstrip("/")).name
    return any(fnmatch(name, pattern) for pattern in patterns)


def canonical_url(source: str, storage_options: dict[str, Any] | None = None) -> str:
    """A folder's or object's URL as listings spell it: `/data/in/` -> `file:///data/in`, `s3://b/in/` -> `s3://b/in`."""
    fs, path = fsspec.core.url_to_fs(source, **(storage_options or {}))
    return fs.unstrip_protocol(path.rstrip("/"))


def list_objects(
    source: str, patterns: Iterable[str], storage_options: dict[str, Any] | None = None
) -> list[ObjectVersion]:
    """The objects matching `patterns` under a folder or prefix (recursively), or `source` itself if it is one object.
    Sorted by URL; an empty or missing prefix gives an empty list."""
    patterns = tuple(patterns)
    try:
        fs, path = fsspec.core.url_to_fs(source, **(storage_options or {}))
        fs.invalidate_cache()  # listings are cached per file-system instance; a poller needs fresh ones
        if fs.isfile(path):
            found = {path: fs.info(path)}
        else:  # a folder, a prefix, or nothing yet (an empty prefix does not exist on object stores)
            found = fs.find(path, detail=True) if fs.isdir(path) else {}
    except (OSError, ValueError) as exc:
        raise SourceError(f"{display_url(source)}: cannot list ({type(exc).__name__}: {exc})") from exc
    objects = [
        ObjectVersion(fs.unstrip_protocol(name), version_of(info), info.get("size"), stamped=not _etag(info))
        for name, info in found.items()
        if info.get("type", "file") == "file"
    ]
    return sorted((o for o in objects if matches(o.url, patterns)), key=lambda o: o.url)


def exported_keys(dest: str, storage_options: dict[str, Any] | None = None) -> set[str]:
    """Keys of the object versions the destination's ledger holds (exported, or final failures)."""
    fs, path = fsspec.core.url_to_fs(join_url(dest, LEDGER_DIR), **(storage_options or {}))
    fs.invalidate_cache()
    if not fs.isdir(path):
        return set()
    # an entry is KEY.json, or KEY.CONTENT_KEY.json for a stamped version: both are known
    return {key for name in fs.ls(path, detail=False) for key in PurePosixPath(name).stem.split(".")}


def record_export(
    obj: ObjectVersion, outcome: dict[str, Any], dest: str, storage_options: dict[str, Any] | None = None
) -> str:
    """Add an object version to the ledger: one small file per version, so concurrent writers never lose entries.
    A stamped version's entry is named by its content key too, so a copy of the same bytes (new mtime) is known."""
    url = join_url(join_url(dest, LEDGER_DIR), ".".join(filter(None, (obj.key, obj.content_key, "json"))))
    entry = {**asdict(obj), **outcome, "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    fs.pipe_file(path, json.dumps(entry, indent=1, default=str).encode())
    return url
