"""Select: the images and classes an export keeps (see openimages_etl/selection.py)."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from openimages_etl.format.csvcopy import with_csv_copies
from openimages_etl.format.layout import Layout
from openimages_etl.format.selection import Selection, SelectionSpec, select
from openimages_etl.format.validation import Keys
from openimages_etl.storage.workarea import WorkArea


@task(name="select-images", cache_policy=NONE)
@with_csv_copies  # the CSVs it reads, copied on this worker, go when it ends
def select_images(layout: Layout, keys: Keys, spec: SelectionSpec, subsets: list[str], work: WorkArea) -> Selection:
    selection = select(layout, keys, spec, subsets, work.sub("selection"))
    logger = get_run_logger()
    logger.info(
        "Selected %s images per subset; %d classes (%s)",
        selection.keys.images_per_subset,
        len(selection.mids),
        ", ".join(f"{entry} = {mid} {name}" for entry, mid, name in selection.requested) or "no class selection",
    )
    for note in selection.notes:
        logger.info("%s", note)
    return selection
