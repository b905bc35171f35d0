"""Scale-out: the same flows with their tasks on Dask (prefect-dask), on a local cluster or an existing one.

    from openimages_etl.flows import export_open_images
    from openimages_etl.flows.scaleout import on_dask

    on_dask(export_open_images, "tcp://scheduler:8786")(source=..., options=...)

Only the task runner changes: tasks pass references (small dataclasses naming files by URL) and read the source
where it is, so they run in any worker process, on any machine; on a scheduler elsewhere the work area defaults to a
run-scoped prefix under DEST (see ExportJob.work_location). Workers report their task runs to the flow's Prefect API:
prefect-dask hands each task the client's settings, PREFECT_API_URL among them, so a cluster needs a server
that every worker reaches (a run in Prefect's local mode has none: refused, see `require_shared_api`).
The deployment variant that runs on Dask is `flows/export_dask.py`.
"""

from __future__ import annotations

from prefect import Flow
from prefect.context import FlowRunContext
from prefect.settings import PREFECT_API_URL

from openimages_etl.errors import UsageError


def require_shared_api(address: str | None) -> None:
    """An existing cluster's workers must reach the flow's Prefect API. Without PREFECT_API_URL the flow runs
    against a temporary server of its own process, and each worker would start another (and time out on a
    fresh machine): refuse before the run exists."""
    if address and not PREFECT_API_URL.value():
        raise UsageError(
            f"--dask {address}: the workers report to the flow's Prefect API, and PREFECT_API_URL is not set. "
            "Start a server every worker reaches (prefect server start --host 0.0.0.0) and set "
            "PREFECT_API_URL=http://HOST:4200/api here; the workers get it from the flow."
        )


def worker_slots() -> int:
    """Tasks the current flow run's Dask workers run at once (their threads); 1 on any other task runner."""
    runner = FlowRunContext.get().task_runner
    if type(runner).__name__ != "DaskTaskRunner":
        return 1
    return sum(runner.client.nthreads().values())


def dask_task_runner(address: str | None = None, workers: int | None = None):
    """A DaskTaskRunner: the scheduler at `address`, or a temporary LocalCluster with `workers` processes
    of one thread each (images are CPU work in Python: processes, not threads, use the cores)."""
    from prefect_dask import DaskTaskRunner  # the optional `dask` extra

    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True, "dashboard_address": None},
    )


def on_dask(flow: Flow, address: str | None = None, workers: int | None = None) -> Flow:
    """`flow` with its tasks on Dask (see `dask_task_runner`); refused for a cluster its workers could not
    report from."""
    require_shared_api(address)
    return flow.with_options(task_runner=dask_task_runner(address, workers))
