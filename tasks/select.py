"""Select: the images and classes an export keeps (see openimages_etl/selection.py)."""
from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from openimages_etl.layout import Layout
from openimages_etl.selection import Selection, SelectionSpec, select
from openimages_etl.validation import Keys
from openimages_etl.workarea import WorkArea
from openimages_etl.csvcopy import with_csv_copies


@task(name="select-images", cache_policy=NONE)
@with_csv_copies  # the CSVs it reads, copied on this worker, go when it ends
def select_images(layout: Layout, keys: Keys, spec: SelectionSpec, subsets: list[str], work: WorkArea) -> Selection:
    selection = select(layout, keys, spec, subsets, work.sub("selection"))
    logger = get_run_logger()
    logger.info("Selected %s images per subset; %d classes (%s)", selection.keys.images_per_subset, len(selection.mids),
                ", ".join(f"{entry} = {mid} {name}" for entry, mid, name in selection.requested) or "no class selection")
    for note in selection.notes:
        logger.info("%s", note)
    return selection
