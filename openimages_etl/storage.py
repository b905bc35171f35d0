"""Every byte of I/O goes through here: fsspec URLs in, staged dataset roots and atomic publishing out."""
from __future__ import annotations

import os
import re
import tarfile
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

import fsspec
from fsspec.callbacks import DEFAULT_CALLBACK, Callback
from fsspec.implementations.local import LocalFileSystem

from .errors import PublishError, SourceError, UnsafeSourceError

ARCHIVE_KINDS = {".zip": "zip", ".tar": "tar", ".tar.gz": "tar", ".tgz": "tar", ".tar.bz2": "tar", ".tar.xz": "tar"}
COPY_CHUNK = 8 << 20
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=@-]*$")


def safe_name(value: str, what: str) -> str:
    """Guard a value from the data that becomes a file name: no separators, no `..`, no NUL."""
    if not _SAFE_NAME.match(value or "") or ".." in value:
        raise UnsafeSourceError(f"{what} {value!r} is not a safe file name")
    return value


def display_url(url: str) -> str:
    """The URL without credentials or query string, for logs and reports."""
    if "::" in url:  # fsspec chained URL, e.g. zip://member::s3://bucket/x.zip
        return "::".join(display_url(part) for part in url.split("::"))
    parts = urlsplit(url)
    if not parts.scheme or len(parts.scheme) == 1:  # plain path (or a Windows drive letter)
        return url
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def archive_kind(path: str) -> str | None:
    name = PurePosixPath(path).name.lower()
    for suffix, kind in sorted(ARCHIVE_KINDS.items(), key=lambda item: -len(item[0])):
        if name.endswith(suffix):
            return kind
    return None


def url_stem(url: str) -> str:
    """`s3://b/x/openimages-v4.tar.gz` -> `openimages-v4`."""
    name = PurePosixPath(urlsplit(url).path.rstrip("/")).name or "export"
    for suffix in sorted(ARCHIVE_KINDS, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


@dataclass(frozen=True)
class DatasetRoot:
    """Where the dataset's files are, as an fsspec URL (maybe chained, `zip://::/x.zip`): cheap to pass around."""

    url: str
    storage_options: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def open_fs(self) -> tuple[fsspec.AbstractFileSystem, str]:
        fs, root = fsspec.core.url_to_fs(self.url, **self.storage_options)
        return fs, root.rstrip("/")


def stage_source(url: str, storage_options: dict[str, Any], work_dir: Path) -> DatasetRoot:
    """Make the source readable in place: folders and local zips as they are, remote zips copied once,
    tars extracted once (they have no index to seek in)."""
    shown = display_url(url)
    try:
        fs, path = fsspec.core.url_to_fs(url, **storage_options)
        exists, is_dir = fs.exists(path), fs.isdir(path)
    except (OSError, ValueError, ImportError) as exc:
        raise SourceError(f"{shown}: cannot open source ({type(exc).__name__}: {exc})") from exc
    if not exists:
        raise SourceError(f"{shown}: no such file or folder")
    if is_dir:
        return DatasetRoot(url, storage_options)
    kind = archive_kind(path)
    if kind is None:
        raise SourceError(f"{shown}: not a folder nor a .zip/.tar/.tar.gz archive")
    work_dir.mkdir(parents=True, exist_ok=True)
    if kind == "zip":
        local = path if is_local(fs) else _download(fs, path, work_dir / "source.zip")
        _check_zip(local, shown)
        return DatasetRoot(f"zip://::{local}")
    target = work_dir / "source"
    _extract_tar(fs, path, target, shown)
    return DatasetRoot(str(target))


def _download(fs: fsspec.AbstractFileSystem, path: str, local: Path) -> str:
    fs.get_file(path, str(local))
    return str(local)


def _check_zip(local: str, shown: str) -> None:
    try:
        with zipfile.ZipFile(local) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise SourceError(f"{shown}: not a readable zip archive ({exc})") from exc
    for name in names:
        _check_member(name, shown)


def _check_member(name: str, shown: str) -> None:
    normal = name.replace("\\", "/")
    if normal.startswith("/") or re.match(r"^[A-Za-z]:", normal) or ".." in PurePosixPath(normal).parts or "\0" in normal:
        raise UnsafeSourceError(f"{shown}: archive member {name!r} points outside the archive")


def _extract_tar(fs: fsspec.AbstractFileSystem, path: str, target: Path, shown: str) -> None:
    try:
        with fs.open(path, "rb") as raw, tarfile.open(fileobj=raw, mode="r|*") as archive:
            for member in archive:
                _check_member(member.name, shown)
                if not (member.isfile() or member.isdir()):
                    raise UnsafeSourceError(f"{shown}: archive member {member.name!r} is a link or device file")
                archive.extract(member, target, filter="data")
    except tarfile.TarError as exc:
        raise SourceError(f"{shown}: not a readable tar archive ({exc})") from exc


def publish_file(local_path: Path, dest_url: str, storage_options: dict[str, Any], callback: Callback = DEFAULT_CALLBACK) -> str:
    """Put a finished local file at `dest_url` so that it appears whole or not at all:
    a rename within the destination folder locally, one upload (complete or absent) on object stores.
    `callback` hears the bytes as they go (fsspec's convention)."""
    try:
        fs, path = fsspec.core.url_to_fs(dest_url, **storage_options)
        if is_local(fs):
            parent = Path(path).parent
            parent.mkdir(parents=True, exist_ok=True)
            partial = parent / f".{Path(path).name}.part-{uuid.uuid4().hex[:8]}"
            try:
                _copy(local_path, partial, callback)
                os.replace(partial, path)
            finally:
                partial.unlink(missing_ok=True)
        else:
            fs.put_file(str(local_path), path, callback=callback)
    except OSError as exc:
        raise PublishError(f"cannot publish {display_url(dest_url)}: {exc}") from exc
    return dest_url


def _copy(source: Path, target: Path, callback: Callback) -> None:
    callback.set_size(source.stat().st_size)
    with source.open("rb") as reader, target.open("wb") as writer:
        while chunk := reader.read(COPY_CHUNK):
            writer.write(chunk)
            callback.relative_update(len(chunk))


def member_path(base: str, rel: str) -> str:
    """Path of `rel` (relative to a dataset root) in the root's file system."""
    return f"{base}/{rel}" if base else rel


def file_slug(rel: str) -> str:
    """A flat file name for work files derived from a dataset file: `annotations/x.csv` -> `annotations__x.csv`."""
    return rel.replace("/", "__")


def join_url(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + name


def reader(fs: fsspec.AbstractFileSystem) -> Callable[[str], bytes]:
    """A function returning a file's bytes: `fs.cat_file`, or a plain read for local files, where fsspec's
    path handling costs twice the read of a small image."""
    return _read_local if is_local(fs) else fs.cat_file


def _read_local(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()
