"""Convert one batch of images or masks of a subset into the export's staging folder."""

from __future__ import annotations

import os
import threading
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
from openimages_etl.storage.locations import file_slug, member_path, read_files, read_member, reader, safe_id, safe_name
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


def convert_image_batch(
    layout: Layout,
    keys: Keys,
    subset: str,
    offset: int,
    limit: int,
    work: WorkArea | Path,
    target_pixels: int | None,
    method: ResizeMethod = ResizeMethod.fast,
    limits: Limits = Limits(),
) -> BatchResult | None:
    """One batch of a subset's images into a shard of `work`, once it has its turn: a batch waiting holds nothing.
    None when the run stopped before that turn came (WorkArea.stop)."""
    work = WorkArea.of(work)
    with PYTHON_BOUND if target_pixels is None else NATIVE_BOUND:
        if work.stopped():
            return None
        return _convert_image_batch(layout, keys, subset, offset, limit, work, target_pixels, method, limits)


def _convert_image_batch(
    layout: Layout,
    keys: Keys,
    subset: str,
    offset: int,
    limit: int,
    work: WorkArea,
    target_pixels: int | None,
    method: ResizeMethod,
    limits: Limits,
) -> BatchResult:
    fs, base = layout.root.open_fs()
    rows = (
        images_of(keys, subset)
        .slice(offset, limit)
        .select(
            ImageList.image_id,
            "path",
            pl.col("path").str.extract(r"(\.[^./]+)$").str.to_lowercase().fill_null("").alias("suffix"),
        )
        .collect()
    )
    paths = rows.get_column("path").to_list()
    sizes, failed, written = [], [], 0
    shard_name = media_shard(f"images-{subset}", offset)
    with work.create(shard_name) as handle:
        shard = ShardWriter(handle)
        files = read_files(fs, [member_path(base, path) for path in paths], paths)
        for (image_id, path, suffix), data in counted(zip(rows.iter_rows(), files), CONVERT):
            try:
                safe_id(image_id)
                data, extension, height, width = convert_image(data, target_pixels, limits, method)
            except (MediaError, UnsafeSourceError) as exc:
                failed.append(
                    {
                        "file": path,
                        "row": None,
                        "column": None,
                        "check": str(exc),
                        "value": image_id,
                        "ImageID": image_id,
                    }
                )
                continue
            name = image_id + (extension or suffix)
            shard.add(f"images/{subset}/{name}", data)
            written += len(data)
            sizes.append((image_id, height, width, name))
        shard.close()
    size_table = work.write_parquet(
        f"sizes/{subset}-{offset}.parquet",
        pl.DataFrame(
            sizes,
            schema={ImageList.image_id: pl.String, "height": pl.Int64, "width": pl.Int64, "name": pl.String},
            orient="row",
        ),
    )
    rejected = work.write_parquet(
        f"rejected/images-{subset}-{offset}.parquet",
        pl.DataFrame({ImageList.image_id: [f["ImageID"] for f in failed]}, schema={ImageList.image_id: pl.String}),
    )
    log = FailureLog()
    log.add(failure_frame([{k: v for k, v in f.items() if k != "ImageID"} for f in failed]))
    return BatchResult(
        {subset: len(sizes)}, written, work.stored(shard_name, len(sizes)), rejected, size_table, failures=log.summary()
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


def convert_mask_batch(
    layout: Layout,
    keys: Keys,
    check: TableCheck,
    offset: int,
    limit: int,
    work: WorkArea | Path,
    sizes: list[StoredFile] = (),
    limits: Limits = Limits(),
) -> BatchResult | None:
    """One batch of a segmentation CSV's masks into a shard of `work`, at the size of their images (`sizes` of the
    image batches), once it has its turn; None when the run stopped before."""
    work = WorkArea.of(work)
    with NATIVE_BOUND:
        if work.stopped():
            return None
        return _convert_mask_batch(layout, keys, check, offset, limit, work, sizes, limits)


def _convert_mask_batch(
    layout: Layout,
    keys: Keys,
    check: TableCheck,
    offset: int,
    limit: int,
    work: WorkArea,
    sizes: list[StoredFile],
    limits: Limits,
) -> BatchResult:
    fs, base = layout.root.open_fs()
    # in the CSV's line order, so the same input gives the same shard (and zip) on every run
    jobs = (
        mask_jobs(check, keys)
        .slice(offset, limit)
        .join(
            exported_sizes(keys, sizes).select(ImageList.image_id, "height", "width"),
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
    shards: dict[str, ZipFileSystem] = {}
    read = reader(fs)
    failed, written, done = [], 0, {}
    stem = file_slug(check.table.path)
    shard_name = media_shard(f"masks-{stem}", offset)
    with work.create(shard_name) as handle:
        out = ShardWriter(handle)
        for mask_name, subset, line, height, width, shard, path in jobs.iter_rows():
            try:
                safe_name(mask_name, "MaskPath")
                if shard is None:
                    data = read(member_path(base, path), path)
                else:
                    if shard not in shards:
                        shards[shard] = ZipFileSystem(
                            fo=fs.open(member_path(base, shard), "rb"), skip_instance_cache=True
                        )
                    data = read_member(shards[shard], path, f"{shard}:{path}")
                png = convert_mask(data, (height, width) if height else None, limits)
            except (MediaError, UnsafeSourceError) as exc:
                failed.append(
                    {
                        "file": check.table.path,
                        "row": line,
                        "column": Segmentation.mask_path,
                        "check": str(exc),
                        "value": mask_name,
                    }
                )
                continue
            out.add(f"masks/{subset}/{mask_name}", png)
            written += len(png)
            done[subset] = done.get(subset, 0) + 1
        out.close()
    rejected = work.write_parquet(
        f"rejected/lines-{stem}-{offset}.parquet",
        pl.DataFrame({LINE: [f["row"] for f in failed]}, schema={LINE: pl.Int64}),
    )
    log = FailureLog()
    log.add(failure_frame(failed))
    return BatchResult(
        done,
        written,
        work.stored(shard_name, sum(done.values())),
        rejected,
        table=check.table.path,
        failures=log.summary(),
    )


def media_shard(stem: str, offset: int) -> str:
    """A batch's zip shard in the work area; names sort by source file, then offset."""
    return f"media/{stem}-{offset:010d}.zip"
