"""The run's work area, any fsspec location (a local folder, `s3://bucket/prefix`, `memory://...`), and the typed
references (`StoredFile`) by which each stage names what it wrote there for the next: no stage lists a folder."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import fsspec
import polars as pl

from openimages_etl.errors import AccountingError
from openimages_etl.storage.locations import open_buffered

STOP_MARK = ".stop"  # present: the run is ending early, batches that have not had their turn skip it


def is_plain_path(url: str) -> bool:
    return "://" not in url and "::" not in url


@dataclass(frozen=True)
class StoredFile:
    """One file a task wrote: where, its bytes, and its rows (a table) or members (a zip shard)."""

    url: str
    size: int
    count: int
    storage_options: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    def open_fs(self) -> tuple[fsspec.AbstractFileSystem, str]:
        return fsspec.core.url_to_fs(self.url, **self.storage_options)

    def open(self, mode: str = "rb") -> IO[bytes]:
        """The file for reading (seekable: remote stores read by ranges)."""
        if is_plain_path(self.url):
            return open(self.url, mode)
        fs, path = self.open_fs()
        return open_buffered(fs, path, mode)

    def check(self) -> None:
        """Raise AccountingError (exit 4) unless the file is there with the size its task returned."""
        fs, path = self.open_fs()
        try:
            size = fs.size(path)
        except FileNotFoundError:
            size = None
        if size != self.size:
            found = "missing" if size is None else f"{size} bytes"
            raise AccountingError(
                f"{self.url}: {found}, its task wrote {self.size} bytes ({self.count} rows or members)"
            )


def scan_stored(ref: StoredFile) -> pl.LazyFrame:
    """A Parquet table of the work area, lazily (a remote one is fetched whole: key tables are small)."""
    if is_plain_path(ref.url):
        return pl.scan_parquet(ref.url)
    fs, path = ref.open_fs()
    return pl.scan_parquet(io.BytesIO(fs.cat_file(path)))


def read_stored(ref: StoredFile, columns: list[str] | None = None) -> pl.DataFrame:
    return scan_stored(ref).select(columns).collect() if columns else scan_stored(ref).collect()


def schema_names(ref: StoredFile) -> list[str]:
    return scan_stored(ref).collect_schema().names()


@dataclass(frozen=True)
class WorkArea:
    """A folder (local path or fsspec URL) of the run's work files, and the storage options to reach it."""

    url: str
    storage_options: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, where: WorkArea | str | Path) -> WorkArea:
        return where if isinstance(where, WorkArea) else cls(str(where))

    def open_fs(self) -> tuple[fsspec.AbstractFileSystem, str]:
        fs, path = fsspec.core.url_to_fs(self.url, **self.storage_options)
        return fs, path.rstrip("/")

    def join(self, name: str) -> str:
        return self.url.rstrip("/") + "/" + name

    def sub(self, name: str) -> WorkArea:
        return WorkArea(self.join(name), self.storage_options)

    @contextmanager
    def create(self, name: str) -> Iterator[IO[bytes]]:
        """A new file `name` to write; locally it appears under its name only complete (a retried task overwrites it),
        on an object store an upload completes on close."""
        url = self.join(name)
        if is_plain_path(url):
            Path(url).parent.mkdir(parents=True, exist_ok=True)
            partial = f"{url}.partial-{uuid.uuid4().hex[:8]}"
            try:
                with open(partial, "wb") as handle:
                    yield handle
                os.replace(partial, url)
            finally:
                Path(partial).unlink(missing_ok=True)
            return
        fs, path = fsspec.core.url_to_fs(url, **self.storage_options)
        handle = open_buffered(fs, path, "wb")
        try:
            yield handle
        except BaseException:
            handle.close()  # fsspec commits on close, whatever happened: the half file goes
            fs.rm(path)
            raise
        handle.close()

    @contextmanager
    def target(self, name: str) -> Iterator[str | IO[bytes]]:
        """Where polars writes file `name`: a local path as it is (polars writes paths fastest), else an upload."""
        url = self.join(name)
        if is_plain_path(url):
            Path(url).parent.mkdir(parents=True, exist_ok=True)
            yield url
            return
        with self.create(name) as handle:
            yield handle

    def stored(self, name: str, count: int) -> StoredFile:
        """The reference to file `name` of the area, written just now, with `count` rows or members."""
        url = self.join(name)
        if is_plain_path(url):
            return StoredFile(url, os.path.getsize(url), count, self.storage_options)
        fs, path = fsspec.core.url_to_fs(url, **self.storage_options)
        return StoredFile(url, fs.size(path), count, self.storage_options)

    def write_parquet(self, name: str, frame: pl.DataFrame) -> StoredFile:
        with self.create(name) as handle:
            frame.write_parquet(handle)
        return self.stored(name, frame.height)

    def sink_parquet(self, name: str, frame: pl.LazyFrame) -> StoredFile:
        """A lazy frame streamed into file `name`; its rows are counted from the written file's metadata."""
        with self.create(name) as handle:
            frame.sink_parquet(handle)
        ref = self.stored(name, 0)
        return StoredFile(ref.url, ref.size, scan_stored(ref).select(pl.len()).collect().item(), self.storage_options)

    def stop(self) -> None:
        """Batches of this run that have not had their turn yet will not start (a file, so that workers on other
        machines see it too)."""
        with self.create(STOP_MARK):
            pass

    def stopped(self) -> bool:
        url = self.join(STOP_MARK)
        if is_plain_path(url):
            return os.path.exists(url)
        fs, path = fsspec.core.url_to_fs(url, **self.storage_options)
        return fs.exists(path)

    def remove(self) -> None:
        fs, path = self.open_fs()
        if fs.exists(path):
            fs.rm(path, recursive=True)
