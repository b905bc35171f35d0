"""The export flows as Prefect deployments: ad-hoc runs from the UI, a cron schedule, a run per uploaded archive.

One definition, two ways to run it (both from `openimages-etl`):
- `serve`: `prefect.serve` in the calling process, no work pool; runs start as subprocesses of it.
- `deploy --pool NAME`: registered for a process work pool, run by `prefect worker start --pool NAME`.
The flows are referenced by module path (`openimages_etl.flows...`), so any machine with the package
installed runs them; no code storage step is needed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from prefect import get_client, serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentEventTrigger
from prefect.exceptions import ObjectNotFound
from prefect.types.entrypoint import EntrypointType

from openimages_etl.errors import UsageError
from openimages_etl.flows import export_new_archives, export_open_images
from openimages_etl.options import ExportOptions
from openimages_etl.production.events import OBJECT_CREATED
from openimages_etl.storage.objects import ARCHIVE_PATTERNS, canonical_url

ADHOC, SCHEDULED, ON_UPLOAD, ADHOC_DASK = "adhoc", "scheduled", "on-upload", "adhoc-dask"
TAGS = ["openimages-etl"]


@dataclass(frozen=True)
class Settings:
    """What differs between installations: where archives land, where exports go, when the schedule runs."""

    source: str
    options: ExportOptions  # the exports' options: DEST and what the form offers pre-filled
    cron: str = "0 * * * *"
    patterns: tuple[str, ...] = ARCHIVE_PATTERNS
    concurrency: int = 1
    dask: str | None = None  # scheduler address (tcp://host:8786): adds the variant of adhoc that runs on Dask


def build_deployments(settings: Settings) -> list[RunnerDeployment]:
    """The three deployments; each only overrides flow defaults, so the UI form still offers every parameter."""
    # absolute URLs: a worker may start in another folder than this command
    prefix = canonical_url(settings.source)
    options = settings.options.model_copy(
        update={"dest": settings.options.dest.model_copy(update={"url": canonical_url(settings.options.dest.url)})}
    )
    shared = {"options": options.model_dump(mode="json", exclude_defaults=True)}
    watched = {**shared, "source": prefix, "patterns": list(settings.patterns)}
    common = {"tags": TAGS, "entrypoint_type": EntrypointType.MODULE_PATH}
    deployments = [
        export_open_images.to_deployment(
            ADHOC,
            parameters=shared,
            concurrency_limit=settings.concurrency,
            **common,
            description="Export one dataset: fill in the form (Run > Custom run) with its source.",
        ),
        export_new_archives.to_deployment(
            SCHEDULED,
            cron=settings.cron,
            parameters=watched,
            **common,
            # a run still busy when the next one is due makes the next one pointless
            concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW),
            description=f"Export the archives under {settings.source} that are new since the last run.",
        ),
        export_new_archives.to_deployment(
            ON_UPLOAD,
            parameters=watched,
            **common,
            concurrency_limit=ConcurrencyLimitConfig(
                limit=settings.concurrency, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
            ),
            triggers=[
                DeploymentEventTrigger(
                    name=f"openimages-etl: archive uploaded under {prefix}",
                    expect={OBJECT_CREATED},
                    match={"prefect.resource.id": f"{prefix}/*"},
                    for_each={"prefect.resource.id"},
                    parameters={"source": "{{ event.resource.id }}"},
                )
            ],
            description=f"Export each archive announced by `openimages-etl watch` or `relay` under {settings.source}.",
        ),
    ]
    if settings.dask:
        deployments.append(_on_dask(settings.dask, shared, settings.concurrency, common))
    return deployments


def _on_dask(address: str, parameters: dict, concurrency: int, common: dict) -> RunnerDeployment:
    """adhoc with its tasks on the Dask scheduler at `address` (flows/export_dask.py reads it from the run's env)."""
    from openimages_etl.flows.export_dask import DASK_ADDRESS, export_on_dask

    variant = export_on_dask.to_deployment(
        ADHOC_DASK,
        parameters=parameters,
        concurrency_limit=concurrency,
        job_variables={"env": {DASK_ADDRESS: address}},
        **common,
        description=(
            f"Export one dataset with its tasks on the Dask cluster at {address} (workers need no shared disk)."
        ),
    )
    variant.entrypoint = (
        "openimages_etl.flows.export_dask.export_on_dask"  # Prefect derives the plain flow's from its function
    )
    return variant


def serve_deployments(settings: Settings, limit: int | None = None) -> None:
    """Run the deployments from this process until interrupted (Ctrl-C pauses their schedules). Runs are its
    subprocesses: they inherit the Dask address of the variant from its environment."""
    if settings.dask:
        from openimages_etl.flows.export_dask import DASK_ADDRESS

        os.environ[DASK_ADDRESS] = settings.dask
    serve(*build_deployments(settings), limit=limit)


def deploy_to_pool(settings: Settings, pool: str) -> list[str]:
    """Register the deployments for a process work pool; `prefect worker start --pool POOL` then runs them.
    (`prefect.deploy` would do the same, but in Prefect 3.8 its check for online workers fails with a 422.)"""
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            raise UsageError(
                f"no work pool {pool!r}: create it with `prefect work-pool create {pool} --type process`"
            ) from None
    return [f"{d.flow_name}/{d.name}" for d in build_deployments(settings) if d.apply(work_pool_name=pool)]
