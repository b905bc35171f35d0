"""The export flow with its tasks on Dask: the entry point of the deployment variant that runs on a cluster
(`openimages-etl serve|deploy ... --dask ADDRESS`; needs the `dask` extra where the run starts).

The scheduler is the one OPENIMAGES_ETL_DASK_ADDRESS names in the environment of the process that runs the flow
(the deployment's job variables set it), a temporary LocalCluster without it. The run reports to the server the
deployment belongs to, and its Dask tasks with it (see scaleout.py).
"""

from __future__ import annotations

import os

from openimages_etl.flows.export import export_open_images
from openimages_etl.flows.scaleout import dask_task_runner

DASK_ADDRESS = "OPENIMAGES_ETL_DASK_ADDRESS"

export_on_dask = export_open_images.with_options(task_runner=dask_task_runner(os.environ.get(DASK_ADDRESS) or None))
