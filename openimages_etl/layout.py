"""Find the Open Images files in a dataset root, in either layout (CVAT/Datumaro zip or Google's release)."""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import polars as pl
from fsspec.implementations.zip import ZipFileSystem

from .config import Limits
from .errors import SourceError
from .storage import ARCHIVE_READ_ERRORS, DatasetRoot, check_zip, display_url, member_path, safe_name
from .tables import check_header

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
CLASS_HEADER = ("LabelName", "DisplayName")

# (kind, pattern on the file name); the subset comes from the `subset` group, Datumaro's rule.
TABLE_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("classes", re.compile(r"^(?:oidv\d+-)?class-descriptions(?:-boxable)?\.csv$")),
    ("images", re.compile(r"^(?P<subset>.+?)-images(?:-boxable)?(?:-with-labels)?-with-rotation\.csv$")),
    ("images", re.compile(r"^(?:(?P<subset>.+)-)?image_ids_and_rotation\.csv$")),
    ("boxes", re.compile(r"^(?P<subset>.+)-annotations-bbox\.csv$")),
    ("labels", re.compile(r"^(?P<subset>.+)-annotations-human-imagelabels(?:-boxable)?\.csv$")),
    ("masks", re.compile(r"^(?P<subset>.+)-annotations-object-segmentation\.csv$")),
]
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
    kind: str
    subset: str | None
    columns: tuple[str, ...]
    header: bool


@dataclass(frozen=True)
class Layout:
    """What a dataset root holds. The file indexes can be millions of rows: they live in parquet files."""

    root: DatasetRoot
    tables: tuple[CsvFile, ...]
    hierarchy: str | None
    images_meta: str | None
    image_files: str  # parquet: path, folder, stem
    mask_files: str  # parquet: name, shard (zip holding it, or null), path
    ignored: tuple[str, ...] = field(default=())

    def of_kind(self, kind: str) -> list[CsvFile]:
        return [table for table in self.tables if table.kind == kind]


def read_header(fs, path: str) -> list[str]:
    with fs.open(path, "rb") as raw:
        first = raw.read(1 << 20).split(b"\n", 1)[0].decode("utf-8-sig", errors="replace")  # fsspec files: no readline(n)
    return next(csv.reader(io.StringIO(first)), [])


def discover(root: DatasetRoot, index_dir: Path) -> Layout:
    """List the root once and sort every file into its role."""
    fs, base = root.open_fs()
    paths = [p[len(base):].lstrip("/") if base else p for p in fs.find(base)]
    tables, class_files, images, masks, shards, ignored = [], [], [], [], [], []
    hierarchy = meta = None
    for rel in sorted(paths):
        name = PurePosixPath(rel).name
        parts = PurePosixPath(rel).parts
        suffix = PurePosixPath(name).suffix.lower()
        if suffix == ".csv":
            kind, subset = _classify_table(name)
            if kind is None:
                ignored.append(rel)
            elif kind == "classes":
                class_files.append(rel)
            else:
                tables.append(_csv_file(fs, base, rel, kind, subset))
        elif HIERARCHY.search(name):
            hierarchy = rel
        elif name == "images.meta":
            meta = rel
        elif MASK_SHARD.match(name):
            shards.append(rel)
        elif suffix == ".png" and any(part == "masks" or part.endswith("-masks") for part in parts[:-1]):
            masks.append((name, None, rel))
        elif suffix in IMAGE_EXTENSIONS:
            folder = parts[-2] if len(parts) > 1 else None
            images.append((rel, folder, PurePosixPath(name).stem))
        else:
            ignored.append(rel)
    if class_files:
        chosen = min(class_files, key=lambda n: next(i for i, r in enumerate(CLASS_FILE_RANK) if r.search(PurePosixPath(n).name)))
        tables.insert(0, _csv_file(fs, base, chosen, "classes", None))
        ignored.extend(f for f in class_files if f != chosen)
    if not tables:
        raise SourceError(f"{display_url(root.url)}: no Open Images CSV files found (see README: supported layouts)")
    limits = Limits.from_env()
    for shard in shards:  # nested zips of masks: the same guards as the source itself
        shown = f"{display_url(root.url)}:{shard}"
        try:
            with fs.open(member_path(base, shard), "rb") as raw:
                shard_fs = ZipFileSystem(fo=raw, skip_instance_cache=True)
                check_zip(shard_fs.zip, shown, limits)
                members = shard_fs.find("")
        except (*ARCHIVE_READ_ERRORS, ValueError) as exc:
            raise SourceError(f"{shown}: not a readable zip archive ({exc})") from exc
        masks.extend((PurePosixPath(m).name, shard, m) for m in members if m.lower().endswith(".png"))
    index_dir.mkdir(parents=True, exist_ok=True)
    image_index, mask_index = index_dir / "image_files.parquet", index_dir / "mask_files.parquet"
    pl.DataFrame(images, schema={"path": pl.String, "folder": pl.String, "stem": pl.String}, orient="row").write_parquet(image_index)
    pl.DataFrame(masks, schema={"name": pl.String, "shard": pl.String, "path": pl.String}, orient="row").write_parquet(mask_index)
    return Layout(root, tuple(tables), hierarchy, meta, str(image_index), str(mask_index), tuple(ignored))


def _classify_table(name: str) -> tuple[str | None, str | None]:
    for kind, pattern in TABLE_PATTERNS:
        match = pattern.match(name)
        if match:
            subset = subset_of(match.groupdict().get("subset"))
            return kind, subset and safe_name(subset, f"subset of {name}")
    return None, None


def _csv_file(fs, base: str, rel: str, kind: str, subset: str | None) -> CsvFile:
    first = read_header(fs, member_path(base, rel))
    if kind == "classes" and tuple(first[:2]) != CLASS_HEADER:
        return CsvFile(rel, kind, subset, CLASS_HEADER, header=False)
    check_header(kind, tuple(first), rel)
    return CsvFile(rel, kind, subset, tuple(first), header=True)
