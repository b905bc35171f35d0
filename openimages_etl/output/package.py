"""Assemble the staged export into an Open Images zip that Datumaro (and so CVAT) imports as it is, streamed from the
files the stages returned (`Staged`) into the destination, and checked against them before it is published."""

from __future__ import annotations

import zipfile
from collections import Counter
from dataclasses import dataclass
from typing import IO

import polars as pl
from fsspec.callbacks import DEFAULT_CALLBACK, Callback

from openimages_etl.errors import AccountingError
from openimages_etl.format.layout import Layout
from openimages_etl.format.validation import Keys
from openimages_etl.media.convert import exported_sizes
from openimages_etl.media.shards import copy_entries
from openimages_etl.output.deflate import LEVEL, write_deflated
from openimages_etl.output.partition import CsvPart
from openimages_etl.schemas.kinds import TABLES, TableKind
from openimages_etl.schemas.tables import ImageListSchema as ImageList
from openimages_etl.storage.locations import PartialFile, member_path
from openimages_etl.storage.workarea import StoredFile

HIERARCHY_NAME = "bbox_labels_600_hierarchy.json"
MEDIA = ("images", "masks")
CLASSES_NAME = TABLES[TableKind.classes].output  # headerless, as Datumaro writes and reads it


@dataclass(frozen=True)
class Staged:
    """Everything the stages wrote for the export, by reference, and the media it must hold (the accounting's)."""

    keys: Keys  # the exported images' key table
    sizes: tuple[StoredFile, ...]  # each image batch's (ImageID, height, width)
    shards: tuple[StoredFile, ...]  # each image and mask batch's STORED zip
    parts: tuple[CsvPart, ...]  # each CSV's rows for each output CSV
    headers: dict[str, list[str]]  # output CSV name -> its header
    hierarchy: StoredFile | None  # pruned by a selection; None: the source's as it is
    media: dict[str, int]  # files converted per folder of the zip (`images/train/`, `masks/train/`)

    @property
    def files(self) -> list[StoredFile]:
        return [*self.sizes, *self.shards, *(p.file for p in self.parts), *([self.hierarchy] if self.hierarchy else [])]


@dataclass(frozen=True)
class PublishedZip:
    url: str
    size: int
    members: int


def package(
    target: PartialFile, staged: Staged, layout: Layout, subsets: list[str], progress: Callback = DEFAULT_CALLBACK
) -> int:
    """Write the zip of `subsets` into `target` from exactly the referenced files, then check it; returns its members.
    A referenced file missing or of another size, or a zip that does not hold what the references and the
    accounting say, is an AccountingError (a bug: nothing may be published)."""
    for ref in staged.files:
        ref.check()
    parts = [p for p in staged.parts if p.output in _outputs(subsets)]
    size = sum(p.file.size for p in parts) + sum(s.size for s in staged.shards)  # about the zip's
    progress.set_size(size)
    with target.open("wb", size) as out:
        members = build_zip(out, staged, layout, subsets, parts, progress)
    with target.open("rb") as written, zipfile.ZipFile(written) as archive:
        check_zip(archive.infolist(), staged, subsets, parts)
    return members


def build_zip(
    out: IO[bytes],
    staged: Staged,
    layout: Layout,
    subsets: list[str],
    parts: list[CsvPart],
    progress: Callback = DEFAULT_CALLBACK,
) -> int:
    """CSVs deflated on every core, JSON and lists by zipfile, media copied raw from the batches' STORED shards."""
    sizes = exported_sizes(staged.keys, list(staged.sizes)).collect()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=LEVEL) as archive:
        for name in sorted({p.output for p in parts}):
            first = [_header(staged, name)] if _header(staged, name) else []
            ordered = sorted((p for p in parts if p.output == name), key=lambda p: (p.file.name, p.start))
            pieces = [p.file for p in ordered]  # each CSV's, its byte ranges' in file order
            write_deflated(archive, f"annotations/{name}", first + pieces)
            progress.relative_update(sum(f.size for f in pieces))
        for subset in subsets:
            if TABLES[TableKind.images].output_name(subset) not in {p.output for p in parts}:
                _write_image_list(archive, subset, sizes)
        if staged.hierarchy:  # pruned to a selection's classes
            with staged.hierarchy.open("rb") as tree:
                archive.writestr(f"annotations/{HIERARCHY_NAME}", tree.read())
        elif layout.hierarchy:
            fs, base = layout.root.open_fs()
            archive.writestr(f"annotations/{HIERARCHY_NAME}", fs.cat_file(member_path(base, layout.hierarchy)))
        known = sizes.filter(pl.col("subset").is_in(subsets) & pl.col("height").is_not_null())
        if known.height:
            lines = known.select(
                pl.format("{} {} {}", shell_quoted(pl.col(ImageList.image_id)), "height", "width")
            ).to_series()
            archive.writestr("annotations/images.meta", "# image_id height width\n" + "\n".join(lines) + "\n")
        wanted = tuple(f"{media}/{subset}/" for media in MEDIA for subset in subsets)
        for shard in sorted(staged.shards, key=lambda f: f.name):
            with shard.open("rb") as raw:
                copy_entries(archive, raw, wanted)
            progress.relative_update(shard.size)
        return len(archive.infolist())


def check_zip(members: list[zipfile.ZipInfo], staged: Staged, subsets: list[str], parts: list[CsvPart]) -> None:
    """The built zip against the references and the accounting: each media folder holds the files converted into
    it, each CSV its header and the bytes of its parts (whose rows the accounting counted)."""
    problems = []
    folders = Counter(
        "/".join(m.filename.split("/")[:2]) + "/"
        for m in members
        if m.filename.startswith(tuple(f"{k}/" for k in MEDIA))
    )
    expected = {folder: n for folder, n in staged.media.items() if folder.split("/")[1] in subsets and n}
    if dict(folders) != expected:
        problems.append(
            f"media files per folder {dict(sorted(folders.items()))}, converted {dict(sorted(expected.items()))}"
        )
    sizes = {m.filename: m.file_size for m in members}
    for name in sorted({p.output for p in parts}):
        want = sum(p.file.size for p in parts if p.output == name) + len(_header(staged, name))
        if sizes.get(f"annotations/{name}") != want:
            problems.append(
                f"annotations/{name}: {sizes.get(f'annotations/{name}')} bytes, its parts and header {want}"
            )
    if problems:
        raise AccountingError(
            "the built zip does not hold what the stages wrote, nothing published: " + "; ".join(problems)
        )


def _header(staged: Staged, name: str) -> bytes:
    """An output CSV's header line (the class list has none)."""
    header = staged.headers.get(name)
    return (",".join(header) + "\r\n").encode() if header and name != CLASSES_NAME else b""


def _outputs(subsets: list[str]) -> set[str]:
    return {spec.output_name(s) for s in subsets for spec in TABLES.values()} | {CLASSES_NAME}


def _write_image_list(archive: zipfile.ZipFile, subset: str, sizes: pl.DataFrame) -> None:
    """A source without image lists still gets one per subset: Datumaro's importer reads items from it."""
    ids = sizes.filter(pl.col("subset") == subset).select(ImageList.image_id, pl.lit(subset).alias(ImageList.subset))
    if ids.height:  # written by polars: an id with a comma or a quote is quoted, as Datumaro's csv module does
        rows = ids.with_columns(
            pl.lit(None, pl.String).alias(c) for c in ImageList.to_schema().columns if c not in ids.columns
        )
        name = TABLES[TableKind.images].output_name(subset)
        archive.writestr(f"annotations/{name}", rows.write_csv(line_terminator="\r\n"))


def shell_quoted(ids: pl.Expr) -> pl.Expr:
    """Each id as Python's shlex.quote writes it (what Datumaro's images.meta holds, and how it reads it back)."""
    return (
        pl.when(ids.str.contains(r"[^\w@%+=:,./-]|[^\x00-\x7f]") | (ids == ""))
        .then(pl.lit("'") + ids.str.replace_all("'", "'\"'\"'", literal=True) + pl.lit("'"))
        .otherwise(ids)
    )
