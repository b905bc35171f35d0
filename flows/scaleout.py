"""Scale-out: the same flows with their tasks on Dask (prefect-dask), on a local cluster or an existing one.

    from openimages_etl.flows import export_open_images
    from openimages_etl.flows.scaleout import on_dask

    on_dask(export_open_images, "tcp://scheduler:8786")(source=..., options=...)

Only the task runner changes: tasks already pass references (paths, small dataclasses), so they run
in any worker process. Workers must see the source and the work folder: on one machine that is
automatic; on a cluster pass `work_dir` on storage every worker mounts.
"""
from __future__ import annotations

from prefect import Flow


def dask_task_runner(address: str | None = None, workers: int | None = None):
    """A DaskTaskRunner: the scheduler at `address`, or a temporary LocalCluster with `workers` processes
    of one thread each (images are CPU work in Python: processes, not threads, use the cores)."""
    from prefect_dask import DaskTaskRunner  # the optional `dask` extra

    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                          cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True, "dashboard_address": None})


def on_dask(flow: Flow, address: str | None = None, workers: int | None = None) -> Flow:
    """`flow` with its tasks on Dask (see `dask_task_runner`)."""
    return flow.with_options(task_runner=dask_task_runner(address, workers))
