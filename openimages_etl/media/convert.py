"""Convert one batch of images or masks of a subset into the export's staging folder."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from fsspec.implementations.zip import ZipFileSystem

from openimages_etl.config import Limits, ResizeMethod, images_per_task
from openimages_etl.errors import UnsafeSourceError
from openimages_etl.format.failures import FailureLog, FailureSummary, failure_frame
from openimages_etl.format.layout import Layout
from openimages_etl.format.tables import LINE
from openimages_etl.format.validation import Keys, TableCheck
from openimages_etl.media.images import MediaError, convert_image, convert_mask
from openimages_etl.media.shards import ShardWriter
from openimages_etl.progress import CONVERT, counted
from openimages_etl.schemas.tables import ImageListSchema as ImageList
from openimages_etl.schemas.tables import SegmentationSchema as Segmentation
from openimages_etl.storage.locations import (
    file_slug,
    member_path,
    open_buffered,
    read_files,
    read_member,
    reader,
    safe_id,
    safe_name,
)
from openimages_etl.storage.workarea import StoredFile, WorkArea, scan_stored, schema_names

# Batches of one process take turns by the kind of work they do. Keeping originals is Python work holding
# the GIL: side by side in threads such batches only slow each other (20k small JPEGs: 1.2 s one batch at
# a time, 2.5 s as 10 threads). Decoding and encoding release it, so those run one batch per core. A batch
# waits for its turn before it reads anything (125 batches reading their slice at once took 3 GB).
PYTHON_BOUND = threading.Semaphore(1)
NATIVE_BOUND = threading.Semaphore(os.cpu_count() or 1)


@dataclass(frozen=True)
class BatchResult:
    """What a conversion batch did and wrote: its zip shard of media, the ImageIDs or lines of the rows its failures
    reject, an image batch's sizes; files converted per subset, bytes."""

    converted_per_subset: dict[str, int]
    bytes_written: int
    shard: StoredFile
    rejected: StoredFile  # images: ImageID; masks: __line of `table`
    sizes: StoredFile | None = None  # images: ImageID, height, width, name
    table: str | None = None  # masks: the segmentation CSV
    failures: FailureSummary = field(default_factory=FailureSummary)

    @property
    def converted(self) -> int:
        return sum(self.converted_per_subset.values())


def images_of(keys: Keys, subset: str) -> pl.LazyFrame:
    """The subset's images that have a file, in the key table's order (by id, see build_keys): batches are slices."""
    return scan_stored(keys.images).filter((pl.col("subset") == subset) & pl.col("path").is_not_null())


def images_to_convert(keys: Keys, subsets: list[str]) -> int:
    return sum(images_of(keys, subset).select(pl.len()).collect().item() for subset in subsets)


def image_batches(
    layout: Layout, keys: Keys, subsets: list[str], target_pixels: int | None
) -> list[tuple[str, int, int]]:
    """(subset, offset, limit) of each conversion task; images to resize go by their source bytes (images_per_task)."""
    batches = []
    for subset in subsets:
        count = keys.images_per_subset.get(subset, 0)
        work = None if target_pixels is None else source_bytes_per_image(layout, keys, subset, count)
        size = images_per_task(count, target_pixels is None, work)
        batches += [(subset, offset, size) for offset in range(0, count, size)]
    return batches


def source_bytes_per_image(layout: Layout, keys: Keys, subset: str, count: int, samples: int = 32) -> float | None:
    """The mean size of the subset's image files, from `samples` of them spread over it (a stat each, where
    listing every size would stat millions of files); None when it has none."""
    paths = (
        images_of(keys, subset)
        .gather_every(max(1, count // samples))
        .head(samples)
        .select("path")
        .collect()
        .to_series()
    )
    if paths.is_empty():
        return None
    fs, base = layout.root.open_fs()
    return sum(fs.size(member_path(base, path)) for path in paths) / len(paths)


@dataclass(frozen=True)
class ImageBatch:
    """`limit` of a subset's images from `offset`, resized to `target_pixels` by `method` (None: originals kept)."""

    subset: str
    offset: int
    limit: int
    target_pixels: int | None = None
    method: ResizeMethod = ResizeMethod.fast

    @property
    def turn(self) -> threading.Semaphore:
        return PYTHON_BOUND if self.target_pixels is None else NATIVE_BOUND

    @property
    def label(self) -> str:
        return f"{self.subset} images"


@dataclass(frozen=True)
class MaskBatch:
    """`limit` valid rows of the segmentation CSV `check` from `offset`, each mask at the size of its converted image
    (`sizes`, the image batches' tables of them)."""

    check: TableCheck
    offset: int
    limit: int
    sizes: tuple[StoredFile, ...] = ()

    @property
    def turn(self) -> threading.Semaphore:
        return NATIVE_BOUND

    @property
    def label(self) -> str:
        return f"{self.check.table.path} masks"


@dataclass(frozen=True)
class BatchRequest:
    """One conversion task: its batch, the source's layout and key tables, the work area its shard goes to and the
    caps on untrusted media."""

    batch: ImageBatch | MaskBatch
    layout: Layout
    keys: Keys
    work: WorkArea | Path
    limits: Limits = Limits()


def convert_batch(request: BatchRequest) -> BatchResult | None:
    """A batch of images or masks into a shard of the work area, once it has its turn: a batch waiting holds nothing.
    None when the run stopped before that turn came (WorkArea.stop)."""
    work, batch = WorkArea.of(request.work), request.batch
    with batch.turn:
        if work.stopped():
            return None
        convert = _convert_image_batch if isinstance(batch, ImageBatch) else _convert_mask_batch
        return convert(batch, request.layout, request.keys, work, request.limits)


def image_rows(keys: Keys, batch: ImageBatch) -> pl.DataFrame:
    """The batch's images: ImageID, path in the source and the file's suffix (kept by originals)."""
    suffix = pl.col("path").str.extract(r"(\.[^./]+)$").str.to_lowercase().fill_null("")
    return (
        images_of(keys, batch.subset)
        .slice(batch.offset, batch.limit)
        .select(ImageList.image_id, "path", suffix.alias("suffix"))
        .collect()
    )


def _convert_image_batch(batch: ImageBatch, layout: Layout, keys: Keys, work: WorkArea, limits: Limits) -> BatchResult:
    subset, offset, rows = batch.subset, batch.offset, image_rows(keys, batch)
    fs, base = layout.root.open_fs()
    paths = rows.get_column("path").to_list()
    out, sizes = _BatchOutput(work, "images", subset, offset, {subset: 0}), []
    with out.writing():
        files = read_files(fs, [member_path(base, path) for path in paths], paths)
        for (image_id, path, suffix), data in counted(zip(rows.iter_rows(), files), CONVERT):
            try:
                safe_id(image_id)
                data, extension, height, width = convert_image(data, batch.target_pixels, limits, batch.method)
            except (MediaError, UnsafeSourceError) as exc:
                out.fail(path, None, None, exc, image_id)
                continue
            name = image_id + (extension or suffix)
            out.add(subset, name, data)
            sizes.append((image_id, height, width, name))
    size_table = work.write_parquet(
        f"sizes/{subset}-{offset}.parquet",
        pl.DataFrame(
            sizes,
            schema={ImageList.image_id: pl.String, "height": pl.Int64, "width": pl.Int64, "name": pl.String},
            orient="row",
        ),
    )
    return out.result(
        f"rejected/images-{subset}-{offset}.parquet", pl.col("value").alias(ImageList.image_id), sizes=size_table
    )


def exported_sizes(keys: Keys, sizes: list[StoredFile]) -> pl.LazyFrame:
    """(ImageID, subset, height, width) of every exported image: the converted file's size (from the image batches'
    `sizes`), or the images.meta size of an image listed without a file (an image that failed to convert is left
    out)."""
    meta = (
        ["height", "width"]
        if _has_meta(keys)
        else [pl.lit(None, pl.Int64).alias("height"), pl.lit(None, pl.Int64).alias("width")]
    )
    listed = scan_stored(keys.images)
    without_file = listed.filter(pl.col("path").is_null()).select(ImageList.image_id, "subset", *meta)
    if not sizes:
        return without_file
    converted = pl.concat([scan_stored(ref) for ref in sizes]).select(ImageList.image_id, "height", "width")
    with_file = listed.filter(pl.col("path").is_not_null()).select(ImageList.image_id, "subset")
    # in the key table's order (subset, ImageID), whichever batch finished first: the same zip from the same input
    return pl.concat(
        [with_file.join(converted, on=ImageList.image_id, how="inner", maintain_order="left"), without_file]
    )


def _has_meta(keys: Keys) -> bool:
    return "height" in schema_names(keys.images)


def mask_jobs(check: TableCheck, keys: Keys) -> pl.LazyFrame:
    """Valid segmentation rows with the subset of their image, in a stable order."""
    subsets = scan_stored(keys.images).select(ImageList.image_id, "subset")
    return scan_stored(check.mask_jobs).join(subsets, on=ImageList.image_id, how="inner").sort(LINE)


def mask_rows(layout: Layout, keys: Keys, batch: MaskBatch) -> pl.DataFrame:
    """The batch's masks, in the CSV's line order (the same input gives the same shard and zip on every run): MaskPath,
    subset, line, their image's exported size, and their file (in a masks zip `shard` of the source, or not)."""
    return (
        mask_jobs(batch.check, keys)
        .slice(batch.offset, batch.limit)
        .join(
            exported_sizes(keys, batch.sizes).select(ImageList.image_id, "height", "width"),
            on=ImageList.image_id,
            how="left",
            maintain_order="left",
        )
        .join(
            scan_stored(layout.mask_files).unique("name"),
            left_on=Segmentation.mask_path,
            right_on="name",
            how="left",
            maintain_order="left",
        )
        .select(Segmentation.mask_path, "subset", LINE, "height", "width", "shard", "path")
        .collect()
    )


def _convert_mask_batch(batch: MaskBatch, layout: Layout, keys: Keys, work: WorkArea, limits: Limits) -> BatchResult:
    check, offset, jobs = batch.check, batch.offset, mask_rows(layout, keys, batch)
    fs, base = layout.root.open_fs()
    shards: dict[str, ZipFileSystem] = {}
    read = reader(fs)
    stem = file_slug(check.table.path)
    out = _BatchOutput(work, "masks", stem, offset)
    with out.writing():
        for mask_name, subset, line, height, width, shard, path in jobs.iter_rows():
            try:
                safe_name(mask_name, "MaskPath")
                if shard is None:
                    data = read(member_path(base, path), path)
                else:
                    if shard not in shards:
                        shards[shard] = ZipFileSystem(
                            fo=open_buffered(fs, member_path(base, shard)), skip_instance_cache=True
                        )
                    data = read_member(shards[shard], path, f"{shard}:{path}")
                png = convert_mask(data, (height, width) if height else None, limits)
            except (MediaError, UnsafeSourceError) as exc:
                out.fail(check.table.path, line, Segmentation.mask_path, exc, mask_name)
                continue
            out.add(subset, mask_name, png)
    return out.result(f"rejected/lines-{stem}-{offset}.parquet", pl.col("row").alias(LINE), table=check.table.path)


class _BatchOutput:
    """What a batch writes: its shard of converted files (`kind`/subset/name in the export), counted per subset, and
    the failures that reject their rows (records of failure_frame)."""

    def __init__(self, work: WorkArea, kind: str, stem: str, offset: int, converted: dict[str, int] | None = None):
        self.work, self.kind, self.shard = work, kind, media_shard(f"{kind}-{stem}", offset)
        self.converted, self.written, self.failed = converted or {}, 0, []

    @contextmanager
    def writing(self) -> Iterator[None]:
        """The shard open for `add`; complete (and visible in the work area) once the block ends without error."""
        with self.work.create(self.shard) as handle:
            self._writer = ShardWriter(handle)
            yield
            self._writer.close()

    def add(self, subset: str, name: str, data: bytes) -> None:
        self._writer.add(f"{self.kind}/{subset}/{name}", data)
        self.written += len(data)
        self.converted[subset] = self.converted.get(subset, 0) + 1

    def fail(self, file: str, row: int | None, column: str | None, exc: Exception, value: str) -> None:
        self.failed.append({"file": file, "row": row, "column": column, "check": str(exc), "value": value})

    def result(self, rejected_name: str, rejects: pl.Expr, **refs: StoredFile | str) -> BatchResult:
        """The batch's result once its shard is written: `rejects` picks, from its failures, what names the rows they
        reject (written to `rejected_name`); `refs` are the kind's own fields of BatchResult."""
        failures = failure_frame(self.failed)
        log = FailureLog()
        log.add(failures)
        return BatchResult(
            self.converted,
            self.written,
            self.work.stored(self.shard, sum(self.converted.values())),
            self.work.write_parquet(rejected_name, failures.select(rejects)),
            failures=log.summary(),
            **refs,
        )


def media_shard(stem: str, offset: int) -> str:
    """A batch's zip shard in the work area; names sort by source file, then offset."""
    return f"media/{stem}-{offset:010d}.zip"
