"""Find the Open Images files in a dataset root, in either layout (CVAT/Datumaro zip or Google's release)."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import NamedTuple

import polars as pl
from fsspec.implementations.zip import ZipFileSystem

from openimages_etl.config import Limits
from openimages_etl.errors import SourceError, UnreadableFileError
from openimages_etl.schemas.kinds import TABLES, TableKind, check_header
from openimages_etl.storage.locations import (
    ARCHIVE_READ_ERRORS,
    DatasetRoot,
    check_zip,
    display_url,
    find_files,
    is_local,
    member_path,
    open_buffered,
    safe_name,
)
from openimages_etl.storage.workarea import StoredFile, WorkArea

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
CLASS_HEADER = tuple(TABLES[TableKind.classes].columns)  # the columns of a class file without a header line
# Datumaro's precedence when several class files are present: oidv* (with header) first.
CLASS_FILE_RANK = [re.compile(r"^oidv\d+-"), re.compile(r"-boxable\.csv$"), re.compile(r".")]
MASK_SHARD = re.compile(r"^(?P<subset>.+)-masks-[0-9a-f]\.zip$")
HIERARCHY = re.compile(r"hierarchy.*\.json$")


def subset_of(prefix: str | None) -> str | None:
    """`oidv6-train` -> `train` (the official V6+ prefix); other prefixes are the subset itself."""
    if prefix is None:
        return None
    return re.sub(r"^oidv\d+-", "", prefix)


@dataclass(frozen=True)
class CsvFile:
    """One annotation CSV: where it is, what it holds, and which subset its name says."""

    path: str
    kind: TableKind
    subset: str | None
    columns: tuple[str, ...]
    header: bool
    local: str = ""  # the file itself when the source is a local folder; else readers take a copy (csvcopy.local_csv)
    root: DatasetRoot | None = field(default=None, compare=False, repr=False)  # where to copy it from
    size: int = 0  # bytes: a large file is validated and partitioned as byte ranges on a cluster (csvranges.py)
    # One byte range of the file (csvranges.cut_range): the byte it starts at, and the file's lines before its first
    # record, which its line numbers count on from (0 while the ranges before it are not counted yet).
    start: int = 0
    lines_before: int = 0


class ByteRange(NamedTuple):
    """The records starting in bytes [start, end) of a CSV (csvranges.py): `rows` of them, and the file's lines
    before the first."""

    start: int
    end: int
    rows: int
    lines_before: int = 0


@dataclass(frozen=True)
class Layout:
    """What a dataset root holds. The file indexes can be millions of rows: they live in parquet files."""

    root: DatasetRoot
    tables: tuple[CsvFile, ...]
    hierarchy: str | None
    images_meta: str | None
    image_files: StoredFile  # parquet: path, folder, stem
    mask_files: StoredFile  # parquet: name, shard (zip holding it, or null), path
    ignored: tuple[str, ...] = field(default=())

    def of_kind(self, kind: TableKind) -> list[CsvFile]:
        return [table for table in self.tables if table.kind == kind]


def read_header(fs, path: str, shown: str) -> list[str]:
    with open_buffered(fs, path) as raw:
        first = (
            raw.read(1 << 20).split(b"\n", 1)[0].decode("utf-8-sig", errors="replace")
        )  # fsspec files: no readline(n)
    try:
        return next(csv.reader(io.StringIO(first)), [])
    except csv.Error as exc:
        raise UnreadableFileError(shown, 1, f"malformed header line ({exc})") from exc


def discover(root: DatasetRoot, index: WorkArea | str, limits: Limits = Limits()) -> Layout:
    """List the root once and sort every file into its role; the file indexes go to `index`."""
    index = WorkArea.of(index)
    fs, base = root.open_fs()
    paths = [rel for rel in (p[len(base) :].lstrip("/") if base else p for p in find_files(fs, base)) if rel]
    files = _file_roles(sorted(paths))
    images = files.filter(pl.col("role") == "image").select("path", "folder", "stem")
    masks = [files.filter(pl.col("role") == "mask").select("name", pl.lit(None, pl.String).alias("shard"), "path")]
    tables, class_files, shards, ignored = [], [], [], []
    hierarchy = meta = None
    for rel, name, suffix in files.filter(pl.col("role").is_null()).select("path", "name", "suffix").iter_rows():
        if suffix == ".csv":
            kind, subset = _classify_table(name)
            if kind is None:
                ignored.append(rel)
            elif kind == TableKind.classes:
                class_files.append(rel)
            else:
                tables.append(_csv_file(fs, base, rel, kind, subset, root))
        elif HIERARCHY.search(name):
            hierarchy = rel
        elif name == "images.meta":
            meta = rel
        elif MASK_SHARD.match(name):
            shards.append(rel)
        else:
            ignored.append(rel)
    if class_files:
        chosen = min(
            class_files, key=lambda n: next(i for i, r in enumerate(CLASS_FILE_RANK) if r.search(PurePosixPath(n).name))
        )
        tables.insert(0, _csv_file(fs, base, chosen, TableKind.classes, None, root))
        ignored.extend(f for f in class_files if f != chosen)
    if not tables:
        raise SourceError(f"{display_url(root.url)}: no Open Images CSV files found (see README: supported layouts)")
    for shard in shards:  # nested zips of masks: the same guards as the source itself
        shown = f"{display_url(root.url)}:{shard}"
        try:
            with open_buffered(fs, member_path(base, shard)) as raw:
                shard_fs = ZipFileSystem(fo=raw, skip_instance_cache=True)
                check_zip(shard_fs.zip, shown, limits)
                members = shard_fs.find("")
        except (*ARCHIVE_READ_ERRORS, ValueError) as exc:
            raise SourceError(f"{shown}: not a readable zip archive ({exc})") from exc
        pngs = [m for m in members if m.lower().endswith(".png")]
        masks.append(
            pl.DataFrame(
                {"name": [PurePosixPath(m).name for m in pngs], "shard": [shard] * len(pngs), "path": pngs},
                schema={"name": pl.String, "shard": pl.String, "path": pl.String},
            )
        )
    image_index = index.write_parquet("image_files.parquet", images)
    mask_index = index.write_parquet("mask_files.parquet", pl.concat(masks))
    return Layout(root, tuple(tables), hierarchy, meta, image_index, mask_index, tuple(ignored))


def _file_roles(paths: list[str]) -> pl.DataFrame:
    """path, folder, name, stem, suffix and role ("image", "mask" or null: look closer) of every file, vectorised:
    a release has millions of images."""
    files = (
        pl.DataFrame({"path": paths}, schema={"path": pl.String})
        .with_columns(
            name=pl.col("path").str.extract(r"([^/]+)$"),
            folder=pl.col("path").str.extract(r"([^/]+)/[^/]+$"),
        )
        .with_columns(suffix=pl.col("name").str.extract(r"^.+(\.[^.]+)$").str.to_lowercase())
    )
    in_masks = pl.col("path").str.contains(r"(?:^|/)(?:masks|[^/]*-masks)/")
    # Under `images/<subset>/` the stem is the path below the subset, sub-folders included: Datumaro writes the
    # item `dir/img1` (a CVAT frame uploaded in a folder) as images/<subset>/dir/img1.jpg and reads it back so.
    nested = r"(?:^|/)images/([^/]+)/(.+)\.[^./]+$"
    return files.with_columns(
        folder=pl.coalesce(pl.col("path").str.extract(nested, 1), pl.col("folder")),
        stem=pl.coalesce(
            pl.col("path").str.extract(nested, 2), pl.col("name").str.extract(r"^(.+)\.[^.]+$"), pl.col("name")
        ),
        role=pl.when((pl.col("suffix") == ".png") & in_masks)
        .then(pl.lit("mask"))
        .when(pl.col("suffix").is_in(sorted(IMAGE_EXTENSIONS)))
        .then(pl.lit("image")),
    )


def _classify_table(name: str) -> tuple[TableKind | None, str | None]:
    for kind, spec in TABLES.items():
        for pattern in spec.patterns:
            match = pattern.match(name)
            if match:
                subset = subset_of(match.groupdict().get("subset"))
                return kind, subset and safe_name(subset, f"subset of {name}")
    return None, None


def _csv_file(fs, base: str, rel: str, kind: TableKind, subset: str | None, root: DatasetRoot) -> CsvFile:
    path = member_path(base, rel)
    try:
        first = read_header(fs, path, rel)
    except ARCHIVE_READ_ERRORS as exc:
        raise SourceError(f"{rel}: corrupt archive member ({type(exc).__name__}: {exc})") from exc
    local = path if is_local(fs) else ""  # archive members and object stores: each reading task copies what it reads
    size = fs.size(path)
    if kind == TableKind.classes and tuple(first[:2]) != CLASS_HEADER:
        return CsvFile(rel, kind, subset, CLASS_HEADER, header=False, local=local, root=root, size=size)
    check_header(kind, tuple(first), rel)
    return CsvFile(rel, kind, subset, tuple(first), header=True, local=local, root=root, size=size)
