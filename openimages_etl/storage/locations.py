"""Every byte of I/O goes through here: fsspec URLs in, staged dataset roots and atomic publishing out."""

from __future__ import annotations

import functools
import gzip
import lzma
import os
import re
import stat
import tarfile
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import quote, urlsplit, urlunsplit

import fsspec
from fsspec.asyn import AsyncFileSystem
from fsspec.callbacks import DEFAULT_CALLBACK, Callback
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.zip import ZipFileSystem

from openimages_etl.config import Limits
from openimages_etl.errors import (
    OpenImagesETLError,
    PublishError,
    SourceError,
    UnsafeSourceError,
    UsageError,
    storage_error,
)

# Archive suffixes and how they open: tarfile's stream mode ("r|*") reads gzip, bzip2 and xz alike.
ZIP_CHAIN = "zip://::"  # a zip's members as a dataset root: zip://::s3://bucket/x.zip
ARCHIVE_KINDS = {".zip": "zip", ".tar": "tar", ".tar.gz": "tar", ".tgz": "tar", ".tar.bz2": "tar", ".tar.xz": "tar"}
ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
COPY_CHUNK = 8 << 20
# Buffers of each remote file open, which fsspec leaves to the store (s3fs: 50 MB). Reading, a "readahead" block
# of that size is fetched on every jump, so a zip member or a CSV header cost 50 MB, held up to three times while it
# arrived; writing, the buffer is copied once more per part uploaded. A flow running its tasks in its own threads
# held several such files at once: its peak RSS came to about the archive's size (issue 13). Reads now fetch what is
# asked plus READ_AHEAD (a sequential reader of a batch's images still gets ~25 of 150 KB per request); uploads go in
# parts of WRITE_PART, larger only for a file that S3's 10,000 parts would not hold otherwise (> 80 GB).
READ_AHEAD = 4 << 20
WRITE_PART = 8 << 20
MAX_PARTS = 9_000  # of S3's 10,000, with room for a size known only roughly
RATIO_FLOOR_BYTES = 1 << 20  # smaller members are not ratio-checked: they cannot be bombs
# Raised while reading a member of an archive whose bytes do not match its directory (truncated, lying sizes, bad CRC).
ARCHIVE_READ_ERRORS = (zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError)
# Raised while streaming a tar that is cut short or not one. TypeError: tarfile's stream reader on a gzip header cut
# short (found by tests/test_properties.py).
TAR_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile, TypeError)
_SECRET_KEY = re.compile(r"key|secret|token|password|passwd|credential|session", re.IGNORECASE)
# Values from the data that become file names (Subset, MaskPath): a leading letter, digit or `_`, no separator, no
# `..` (a dot is followed by another character or ends the name: polars' regex has no look-ahead to say it so).
SAFE_NAME = r"^[A-Za-z0-9_](?:\.?[A-Za-z0-9_+=@-])*\.?$"
# An ImageID becomes images/<subset>/<ImageID>.<ext>, and CVAT frame names hold spaces and sub-folders (`my photo`,
# `dir/img1`): `/`-separated segments, each starting with a letter, digit or `_` (so never empty, `.`, `..` or hidden)
# and holding no backslash, control character or character Windows forbids in names. Python's and polars' regex alike.
_SEGMENT = r'\w[^/\\:*?"<>|\x00-\x1f\x7f-\x9f]*'
SAFE_ID = rf"^{_SEGMENT}(?:/{_SEGMENT})*$"


def safe_name(value: str, what: str) -> str:
    """Guard a value from the data that becomes a file name: no separators, no `..`, no NUL (see SAFE_NAME)."""
    if not re.fullmatch(SAFE_NAME, value or ""):
        raise UnsafeSourceError(f"{what} {value!r} is not a safe file name")
    return value


def safe_id(value: str) -> str:
    """Guard an ImageID, a relative path under its subset's image folder (see SAFE_ID)."""
    if not re.fullmatch(SAFE_ID, value or ""):
        raise UnsafeSourceError(f"ImageID {value!r} is not a safe relative path")
    return value


def plain_file_name(value: str, what: str) -> str:
    """A name given by a user that becomes a file at DEST: any characters but separators, `..`, NUL or a leading dot."""
    if not value or value.startswith(".") or any(bad in value for bad in ("/", "\\", "\0", "..")):
        raise UsageError(f"{what} {value!r} must be a plain file name")
    return value


def display_url(url: str) -> str:
    """The URL without credentials or query string, for logs and reports."""
    if "::" in url:  # fsspec chained URL, e.g. zip://member::s3://bucket/x.zip
        return "::".join(display_url(part) for part in url.split("::"))
    parts = urlsplit(url)
    if not parts.scheme or len(parts.scheme) == 1:  # plain path (or a Windows drive letter)
        return url
    netloc = parts.netloc.rpartition("@")[2]
    # urlunsplit drops an empty netloc's `//`: `zip://` (a chain's first part) would read `zip:`
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")) if netloc else f"{parts.scheme}://{parts.path}"


def absolute_location(url: str, what: str, relative_ok: bool = True) -> str:
    """Where `url` is, said in full for logs: a relative local path made absolute against this process's folder, or
    refused when not `relative_ok` (a deployment run: whoever fills in the form cannot know that folder)."""
    if "://" in url or "::" in url or os.path.isabs(url):
        return display_url(url)
    absolute = os.path.abspath(url)
    if not relative_ok:
        raise UsageError(
            f"{what} {url!r} is a relative path: this run would resolve it against the folder its worker or "
            f"serve process started in ({os.getcwd()}). Give an absolute path (such as {absolute}) or a URL."
        )
    return absolute


CONSOLE_PAGES = {  # the page of one object in the cloud provider's web console
    "s3": "https://s3.console.aws.amazon.com/s3/object/{bucket}?prefix={key}",
    "gs": "https://console.cloud.google.com/storage/browser/_details/{bucket}/{key}",
}
S3_ENDPOINT_SETTINGS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


def browser_url(url: str, storage_options: dict[str, Any] | None = None) -> str | None:
    """What a browser opens for a published file: an http(s) URL itself, the console page of an s3:// or gs://
    object (not for S3 at another endpoint such as MinIO: AWS's console does not know it), else None
    (a path or file:// URL: a browser refuses local files linked from a web page)."""
    parts = urlsplit(display_url(url))
    if parts.scheme in ("http", "https"):
        return url
    options = storage_options or {}
    elsewhere = (
        options.get("endpoint_url")
        or (options.get("client_kwargs") or {}).get("endpoint_url")
        or any(os.environ.get(name) for name in S3_ENDPOINT_SETTINGS)
    )
    page = CONSOLE_PAGES.get("gs" if parts.scheme == "gcs" else parts.scheme)
    if page is None or not parts.netloc or not parts.path.strip("/") or (parts.scheme == "s3" and elsewhere):
        return None
    return page.format(bucket=parts.netloc, key=quote(parts.path.lstrip("/")))


def secret_values(storage_options: dict[str, Any]) -> list[str]:
    """String values of options whose key names a credential, at any depth (e.g. client_kwargs)."""
    found = []
    for key, value in storage_options.items():
        if isinstance(value, dict):
            found += secret_values(value)
        elif isinstance(value, str) and value and _SECRET_KEY.search(str(key)):
            found.append(value)
    return found


def scrub(message: object, storage_options: dict[str, Any]) -> str:
    """`message` as text with every credential of `storage_options` (and the environment's AWS ones) masked."""
    text = str(message)
    env = [os.environ.get(k, "") for k in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")]
    for secret in sorted({*secret_values(storage_options), *env} - {""}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def refuse_credentials(url: str, storage_options: dict[str, Any] | None, what: str) -> None:
    """Credentials must come from a Prefect block or the environment: a run's URLs and options are stored
    as flow-run parameters, shown in the UI and logged, so neither may carry one."""
    hint = "put credentials in a Prefect Secret or AwsCredentials block (see SECURITY.md) or the environment"
    if any(urlsplit(part).username or urlsplit(part).password for part in url.split("::") if "://" in part):
        raise UsageError(f"{what} URL {display_url(url)} holds credentials: {hint}")
    keys = [k for k in _secret_keys(storage_options or {})]
    if keys:
        raise UsageError(f"{what} storage options {keys} look like credentials: {hint}")


def _secret_keys(options: dict[str, Any]) -> list[str]:
    keys = []
    for key, value in options.items():
        if isinstance(value, dict):
            keys += _secret_keys(value)
        elif _SECRET_KEY.search(str(key)) and value not in (None, "", False):
            keys.append(str(key))
    return keys


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


def find_files(fs: fsspec.AbstractFileSystem, root: str) -> list[str]:
    """Every file under `root` (fsspec's `find`); a local folder is walked by `os.scandir`, ~5x faster than
    fsspec's `find`, which stats every file: a release's folder holds millions."""
    return [entry.path for entry in local_files(root)] if is_local(fs) and os.path.isdir(root) else fs.find(root)


def local_files(root: str) -> Iterator[os.DirEntry]:
    """The files under a local folder, at any depth, in no particular order. Links to files count; links to
    folders are not followed (one pointing upwards would never end)."""
    folders = [root]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(entry.path)
                elif entry.is_file():
                    yield entry


@dataclass(frozen=True)
class DatasetRoot:
    """Where the dataset's files are, as an fsspec URL (maybe chained, `zip://::/x.zip`): cheap to pass around."""

    url: str
    storage_options: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def open_fs(self) -> tuple[fsspec.AbstractFileSystem, str]:
        if self.url.startswith(ZIP_CHAIN):  # fsspec would open the archive with the store's buffers: see READ_AHEAD
            archive = self.url.removeprefix(ZIP_CHAIN)
            fs, path = fsspec.core.url_to_fs(archive, **self.storage_options.get(_protocol(archive), {}))
            return ZipFileSystem(fo=open_buffered(fs, path), skip_instance_cache=True), ""
        fs, root = fsspec.core.url_to_fs(self.url, **self.storage_options)
        return fs, root.rstrip("/")


def open_buffered(fs: fsspec.AbstractFileSystem, path: str, mode: str = "rb", size: int = 0) -> IO[bytes]:
    """`fs.open` with bounded buffers (READ_AHEAD, WRITE_PART); `size`: about how large a file to write will grow."""
    block = READ_AHEAD if "r" in mode else max(WRITE_PART, -(-size // MAX_PARTS))
    return fs.open(path, mode, block_size=block)


def stage_source(
    url: str,
    storage_options: dict[str, Any],
    work_dir: Path | str,
    limits: Limits = Limits(),
    work_options: dict[str, Any] | None = None,
) -> DatasetRoot:
    """Make the source readable where it is, from any worker: folders as they are, zips in place (a remote one
    by range reads through `zip://::URL`), tars once into the work area (they have no index to seek in): extracted
    into a local one, repacked as a STORED zip into a remote one (one object, read by range like a zip source).
    Archives pass the guards of `limits` first."""
    shown = display_url(url)
    try:
        fs, path = fsspec.core.url_to_fs(url, **storage_options)
        exists, is_dir = fs.exists(path), fs.isdir(path)
    except (OSError, ValueError, ImportError) as exc:
        raise storage_error(
            SourceError, f"{shown}: cannot open source ({type(exc).__name__}: {scrub(exc, storage_options)})", exc
        ) from exc
    if not exists:
        raise SourceError(f"{shown}: no such file or folder")
    if is_dir:
        return DatasetRoot(url, storage_options)
    kind = archive_kind(path)
    if kind is None:
        raise SourceError(f"{shown}: not a folder nor a {'/'.join(ARCHIVE_KINDS)} archive")
    if kind == "zip":
        try:
            with fs.open(path, "rb") as raw, zipfile.ZipFile(raw) as archive:  # the central directory, by range reads
                check_zip(archive, shown, limits)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
            raise SourceError(f"{shown}: not a readable zip archive ({exc})") from exc
        return zip_root(path if is_local(fs) else url, {} if is_local(fs) else storage_options)
    work_fs, work_path = fsspec.core.url_to_fs(str(work_dir), **(work_options or {}))
    if is_local(work_fs):
        target = Path(work_path) / "source"
        _extract_tar(fs, path, target, shown, limits)
        return DatasetRoot(str(target))
    target = join_url(str(work_dir), "source.zip")
    _repack_tar(fs, path, work_fs, work_fs._strip_protocol(target), shown, limits)
    return zip_root(target, work_options or {})


def zip_root(url: str, storage_options: dict[str, Any]) -> DatasetRoot:
    """The members of the zip at `url` as a dataset root; `storage_options` are those of the store holding it."""
    return DatasetRoot(f"{ZIP_CHAIN}{url}", {_protocol(url): storage_options} if storage_options else {})


def _protocol(url: str) -> str:
    return urlsplit(url).scheme if "://" in url else "file"


def check_zip(archive: zipfile.ZipFile, shown: str, limits: Limits) -> None:
    """Refuse a zip from its central directory before reading a byte of it: unsafe names, links,
    encryption, unknown methods, too many members, too many bytes, bomb-like ratios. Reading stays
    bounded afterwards too: `zipfile` never returns more than a member's declared size and checks its CRC."""
    infos = archive.infolist()
    if not infos:
        raise SourceError(f"{shown}: empty archive")
    if len(infos) > limits.archive_members:
        raise UnsafeSourceError(
            f"{shown}: {len(infos)} members, more than the limit of {limits.archive_members} "
            "(OPENIMAGES_ETL_MAX_ARCHIVE_MEMBERS)"
        )
    seen, total = set(), 0
    for info in infos:
        _check_member(info.filename, shown)
        if info.filename in seen:
            raise UnsafeSourceError(f"{shown}: archive member {info.filename!r} is listed twice")
        seen.add(info.filename)
        if info.create_system == 3 and stat.S_IFMT(info.external_attr >> 16) not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise UnsafeSourceError(f"{shown}: archive member {info.filename!r} is a link or device file")
        if info.flag_bits & 0x1:
            raise SourceError(f"{shown}: archive member {info.filename!r} is encrypted")
        if info.compress_type not in ZIP_METHODS:
            raise SourceError(
                f"{shown}: archive member {info.filename!r} uses unsupported compression method {info.compress_type}"
            )
        _check_ratio(info.filename, info.file_size, info.compress_size, shown, limits)
        total += info.file_size
        if total > limits.archive_bytes:
            raise UnsafeSourceError(
                f"{shown}: members add up to more than {limits.archive_bytes} bytes (OPENIMAGES_ETL_MAX_ARCHIVE_BYTES)"
            )


def _check_ratio(name: str, size: int, packed: int, shown: str, limits: Limits) -> None:
    if size > RATIO_FLOOR_BYTES and size > limits.compression_ratio * max(packed, 1):
        raise UnsafeSourceError(
            f"{shown}: archive member {name!r} expands {size // max(packed, 1)}x, more than the limit "
            f"of {limits.compression_ratio}x (OPENIMAGES_ETL_MAX_COMPRESSION_RATIO): a zip bomb?"
        )


def _check_member(name: str, shown: str) -> None:
    normal = name.replace("\\", "/")
    if (
        normal.startswith("/")
        or re.match(r"^[A-Za-z]:", normal)
        or ".." in PurePosixPath(normal).parts
        or "\0" in normal
    ):
        raise UnsafeSourceError(f"{shown}: archive member {name!r} points outside the archive")


def _extract_tar(fs: fsspec.AbstractFileSystem, path: str, target: Path, shown: str, limits: Limits) -> None:
    """The tar's files under the local folder `target`."""
    try:
        for name, data in _tar_files(fs, path, shown, limits):
            local = target / name
            local.parent.mkdir(parents=True, exist_ok=True)
            with local.open("wb") as out:
                while chunk := data.read(COPY_CHUNK):
                    out.write(chunk)
    except (IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
        raise SourceError(f"{shown}: archive members conflict ({exc})") from exc


def _repack_tar(
    fs: fsspec.AbstractFileSystem,
    path: str,
    work_fs: fsspec.AbstractFileSystem,
    target: str,
    shown: str,
    limits: Limits,
) -> None:
    """The tar's files as a STORED zip at `target`, streamed in one pass (a multipart upload on object stores)."""
    seen = set()
    with (
        open_buffered(work_fs, target, "wb", fs.size(path)) as raw,
        zipfile.ZipFile(_Unseekable(raw), "w", zipfile.ZIP_STORED, allowZip64=True) as archive,
    ):
        for name, data in _tar_files(fs, path, shown, limits):
            if name in seen:
                raise SourceError(f"{shown}: archive members conflict ({name!r} is there twice)")
            seen.add(name)
            with archive.open(zipfile.ZipInfo(name), "w", force_zip64=True) as out:
                while chunk := data.read(COPY_CHUNK):
                    out.write(chunk)


class _Unseekable:
    """A write-only stream as zipfile expects one it cannot seek in (fsspec's writers raise ValueError instead)."""

    def __init__(self, raw):
        self.raw = raw

    def write(self, data: bytes) -> int:
        return self.raw.write(data)

    def tell(self) -> int:
        return self.raw.tell()

    def flush(self) -> None:
        pass  # fsspec uploads a part when its buffer is full; the last one goes when the file is closed


def _tar_files(fs: fsspec.AbstractFileSystem, path: str, shown: str, limits: Limits) -> Iterator[tuple[str, Any]]:
    """Stream the tar once: (safe relative name, readable) of each file. Tar headers come one by one, so the caps are
    enforced as members arrive, and the ratio of bytes given out to compressed bytes read is checked as they are
    read."""
    count = declared = 0
    given = [0]  # bytes given out of every member so far
    try:
        with fs.open(path, "rb") as raw, tarfile.open(fileobj=raw, mode="r|*") as archive:
            for member in archive:
                _check_member(member.name, shown)
                if not (member.isfile() or member.isdir()):
                    raise UnsafeSourceError(f"{shown}: archive member {member.name!r} is a link or device file")
                count, declared = count + 1, declared + member.size
                if count > limits.archive_members:
                    raise UnsafeSourceError(
                        f"{shown}: more than {limits.archive_members} members (OPENIMAGES_ETL_MAX_ARCHIVE_MEMBERS)"
                    )
                if declared > limits.archive_bytes:
                    raise UnsafeSourceError(
                        f"{shown}: members add up to more than {limits.archive_bytes} bytes "
                        "(OPENIMAGES_ETL_MAX_ARCHIVE_BYTES)"
                    )
                if member.isfile():  # its name passed _check_member: relative, no `..`
                    yield (
                        PurePosixPath(member.name).as_posix(),
                        _RatioChecked(archive.extractfile(member), raw, given, member.name, shown, limits),
                    )
    except TAR_READ_ERRORS as exc:
        raise _unreadable_tar(shown, exc) from exc
    if count == 0:
        raise SourceError(f"{shown}: empty archive")


def _unreadable_tar(shown: str, exc: Exception) -> SourceError:
    return SourceError(f"{shown}: not a readable tar archive ({type(exc).__name__}: {exc})")


class _RatioChecked:
    """A tar member's reader that checks, chunk by chunk, the bytes given out of the whole tar (`given`, shared)
    against the compressed bytes read."""

    def __init__(self, data, raw, given: list[int], name: str, shown: str, limits: Limits):
        self.data, self.raw, self.given, self.name, self.shown, self.limits = data, raw, given, name, shown, limits

    def read(self, size: int) -> bytes:
        try:
            chunk = self.data.read(size)
        except TAR_READ_ERRORS as exc:
            raise _unreadable_tar(self.shown, exc) from exc
        self.given[0] += len(chunk)
        _check_ratio(self.name, self.given[0], self.raw.tell(), self.shown, self.limits)
        return chunk


def publish_file(
    local_path: Path, dest_url: str, storage_options: dict[str, Any], callback: Callback = DEFAULT_CALLBACK
) -> str:
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
        raise _publish_error(dest_url, exc, storage_options) from exc
    return dest_url


@dataclass(frozen=True)
class PartialFile:
    """A file being published, under its hidden partial name at the destination (see `publishing`)."""

    fs: fsspec.AbstractFileSystem
    path: str

    def open(self, mode: str = "rb", size: int = 0) -> IO[bytes]:
        """The file (`size`: about how large it will grow, when written)."""
        return open_buffered(self.fs, self.path, mode, size)


@contextmanager
def publishing(dest_url: str, storage_options: dict[str, Any]) -> Iterator[PartialFile]:
    """A new file for `dest_url` that appears there whole or not at all: written (and checked) under a hidden partial
    name beside it, `.NAME.part-XXXXXXXX` (a killed run's is removed by the next one, see runlock), then moved into
    place in one step: a rename locally, one copy on object stores (whose objects appear complete or not at all).
    A storage fault is a PublishError; any error leaves nothing new there."""
    fs = partial = None
    try:
        fs, path = fsspec.core.url_to_fs(dest_url, **storage_options)
        parent, name = path.rsplit("/", 1) if "/" in path else ("", path)
        partial = PartialFile(
            fs, f"{parent}/.{name}.part-{uuid.uuid4().hex[:8]}" if parent else f".{name}.part-{uuid.uuid4().hex[:8]}"
        )
        if is_local(fs):
            fs.makedirs(parent, exist_ok=True)
        yield partial
        fs.mv(partial.path, path)
    except OSError as exc:
        raise _publish_error(dest_url, exc, storage_options) from exc
    finally:
        if partial is not None:
            try:
                fs.rm(partial.path)
            except OSError:  # moved into place, or never written (or the store is down: the next run removes it)
                pass


def _copy(source: Path, target: Path, callback: Callback) -> None:
    callback.set_size(source.stat().st_size)
    with source.open("rb") as reader, target.open("wb") as writer:
        while chunk := reader.read(COPY_CHUNK):
            writer.write(chunk)
            callback.relative_update(len(chunk))


def read_member(fs: fsspec.AbstractFileSystem, path: str, shown: str) -> bytes:
    """All bytes of one file of the source; an archive member that does not match its directory is a SourceError."""
    try:
        return fs.cat_file(path)
    except ARCHIVE_READ_ERRORS as exc:
        raise SourceError(f"{shown}: corrupt archive member ({type(exc).__name__}: {exc})") from exc


def member_path(base: str, rel: str) -> str:
    """Path of `rel` (relative to a dataset root) in the root's file system."""
    return f"{base}/{rel}" if base else rel


def file_slug(rel: str) -> str:
    """A flat file name for work files derived from a dataset file: `annotations/x.csv` -> `annotations__x.csv`."""
    return rel.replace("/", "__")


def join_url(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + name


def reader(fs: fsspec.AbstractFileSystem) -> Callable[[str, str], bytes]:
    """A function of (path, name shown in errors) returning a file's bytes: `read_member`, or a plain read
    for local files, where fsspec's path handling costs twice the read of a small image."""
    return _read_local if is_local(fs) else functools.partial(read_member, fs)


def read_files(fs: fsspec.AbstractFileSystem, paths: list[str], shown: list[str], chunk: int = 64) -> Iterator[bytes]:
    """The bytes of each file, in order. On a remote store they are fetched `chunk` at a time, concurrently
    (fsspec's async `cat`), so a batch converting one image at a time still keeps the network busy."""
    if not isinstance(fs, AsyncFileSystem):
        read = reader(fs)
        yield from map(read, paths, shown)
        return
    for start in range(0, len(paths), chunk):
        part = paths[start : start + chunk]
        fetched = fs.cat(part)
        yield from (fetched[path] for path in part)


def _read_local(path: str, shown: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _publish_error(dest_url: str, exc: OSError, storage_options: dict[str, Any]) -> OpenImagesETLError:
    message = f"cannot publish {display_url(dest_url)}: {type(exc).__name__}: {scrub(exc, storage_options)}"
    return storage_error(PublishError, message, exc)
