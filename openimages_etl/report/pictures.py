"""The run report's pictures: from the exported zip, or of the failing files of a failed run."""

from __future__ import annotations

from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

import fsspec
import polars as pl
from fsspec.implementations.zip import ZipFileSystem

from openimages_etl.errors import Failure
from openimages_etl.format.layout import Layout, discover
from openimages_etl.format.validation import Keys, build_keys
from openimages_etl.report.model import Picture, Selection
from openimages_etl.report.stats import DatasetStats, dataset_stats, sample_images
from openimages_etl.report.visuals import Visual, contact_sheet, failure_sheet, file_part, to_png
from openimages_etl.schemas.tables import ClassDescriptionSchema as Classes
from openimages_etl.storage.locations import DatasetRoot, open_buffered
from openimages_etl.storage.workarea import read_stored

SAMPLE_PER_SUBSET = 24


class MemberTableZip(ZipFileSystem):
    """fsspec's zip filesystem, listing the whole archive and describing a member from zipfile's own table: the stock
    `find` and `info` first build a dict per member and folder (~0.15 s at 20k members); the report reads a few
    dozen."""

    def find(self, path, maxdepth=None, withdirs=False, detail=False, **kwargs):
        if self._strip_protocol(str(path)) or maxdepth is not None or withdirs or detail:
            return super().find(path, maxdepth=maxdepth, withdirs=withdirs, detail=detail, **kwargs)
        return sorted({name.rstrip("/") for name in self.zip.namelist() if not name.endswith("/")})

    def info(self, path, **kwargs):
        try:
            member = self.zip.getinfo(self._strip_protocol(path))
        except KeyError:  # a folder, or no such member: the stock answer
            return super().info(path, **kwargs)
        return {"name": member.filename, "size": member.file_size, "type": "directory" if member.is_dir() else "file"}


@dataclass(frozen=True)
class OpenedRoot(DatasetRoot):
    """A root whose filesystem is opened once: fsspec does not cache zip filesystems, and each opening
    reads the central directory again (0.1 s at 20k members)."""

    opened: tuple[Any, str] | None = field(default=None, compare=False, repr=False)

    def open_fs(self) -> tuple[Any, str]:
        return self.opened or super().open_fs()


def open_zip(zip_url: str, work_dir: Path, storage_options: dict[str, Any] | None = None) -> tuple[Layout, Keys]:
    """Read an exported zip the way the pipeline reads any source: its layout and key tables (zipfile over fsspec)."""
    protocol = zip_url.split("://", 1)[0] if "://" in zip_url else None
    options = {protocol: storage_options} if protocol and storage_options else {}
    opened = MemberTableZip(fo=open_buffered(*fsspec.core.url_to_fs(zip_url, **options.get(protocol, {}))))
    layout = discover(OpenedRoot(f"zip://::{zip_url}", options, (opened, "")), work_dir / "index")
    return layout, build_keys(layout, work_dir)


def dataset_visuals(
    layout: Layout, keys: Keys, sheets: bool = True, pool: Executor | None = None
) -> tuple[DatasetStats, list[Visual]]:
    """Contact sheets (when `sheets`, and the dataset has image files) then charts, with the stats behind them.
    The sheets are drawn in `pool` (a thread of its own when None) while matplotlib draws the charts in this one:
    Pillow releases the GIL to decode, resize and encode, matplotlib is pure Python."""
    if pool is None:
        with ThreadPoolExecutor(1) as own:
            return dataset_visuals(layout, keys, sheets, own)
    sample = sample_images(keys, SAMPLE_PER_SUBSET) if sheets and keys.has_image_files else None
    stats = dataset_stats(layout, keys, None if sample is None else sample.get_column("ImageID"))
    drawing = (
        pool.submit(contact_sheets, layout, keys, sample, stats) if sample is not None else None
    )  # the zip is read there only
    from openimages_etl.report.charts import charts  # matplotlib takes ~0.6 s to import: only runs that draw pay for it

    drawn = charts(stats)
    return stats, (drawing.result() if drawing else []) + drawn


def contact_sheets(layout: Layout, keys: Keys, sample: pl.DataFrame, stats: DatasetStats) -> list[Visual]:
    """One sheet per subset of the sampled images, boxes and masks drawn from the dataset's own files."""
    names = dict(read_stored(keys.labels, [Classes.label_name, Classes.display_name]).drop_nulls().iter_rows())
    return [
        Visual(
            f"contact-{file_part(subset)}.png",
            f"Contact sheet: {subset}",
            to_png(
                contact_sheet(
                    layout,
                    subset,
                    sample,
                    stats.sample_boxes,
                    stats.sample_masks,
                    names,
                    keys.images_per_subset[subset],
                )
            ),
        )
        for subset in sorted(sample.get_column("subset").unique())
    ]


def export_visuals(zip_url: str, work_dir: Path, storage_options: dict[str, Any] | None = None) -> list[Visual]:
    """The pictures of a published run, drawn from the zip itself: what CVAT will see."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(
            import_module, f"{__package__}.charts"
        )  # matplotlib's import (pure Python) overlaps inflating and polars
        layout, keys = open_zip(zip_url, work_dir, storage_options)
        return dataset_visuals(layout, keys, pool=pool)[1]


def selection_visuals(selection: Selection) -> list[Visual]:
    """The chart of images selected per class, from the report's selection section."""
    from openimages_etl.report.charts import selection_chart

    png = selection_chart([row.model_dump() for row in selection.classes])
    return [] if png is None else [Visual("selection.png", "Images selected per class", png)]


def failure_visuals(layout: Layout, errors: list[Failure]) -> list[Visual]:
    """Thumbnails of the images and masks behind a run's first failures (none when no failure is about a file)."""
    picture = failure_sheet(layout, [error.as_dict() for error in errors])
    return [] if picture is None else [Visual("failed-files.png", "Files that failed their checks", to_png(picture))]


def write_visuals(visuals: list[Visual], folder: Path) -> list[Picture]:
    """The PNGs into `folder` (named like the report: NAME.report/); entries for the report's `pictures`."""
    folder.mkdir(parents=True, exist_ok=True)
    for visual in visuals:
        (folder / visual.file).write_bytes(visual.png)
    return [Picture(file=f"{folder.name}/{v.file}", title=v.title) for v in visuals]
