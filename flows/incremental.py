"""The incremental flow: export each archive under a prefix that the destination has not exported yet.

1. find-new-archives: list SOURCE (a prefix, or one archive) with each object's version (ETag, or size and
   mtime); keep the versions missing from DEST's ledger (`DEST/.openimages-etl/exported/`).
2. export-open-images: one subflow run per new archive, with its own report and artifacts.
3. record-export: add the version to the ledger once its outcome is final: published, unchanged (DEST held
   this export already), or rejected for a reason in the archive itself (invalid data, unreadable archive).
   Failures at the destination and crashes are not recorded, so the next run tries again. The run's log and
   table say what each child did.

The scheduled deployment runs this over a prefix; the event-triggered one over the object an event names.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.states import State

from openimages_etl.errors import OpenImagesETLError, PublishError
from openimages_etl.flows.export import export_open_images, locations
from openimages_etl.options import ExportOptions
from openimages_etl.orchestration.credentials import storage_options
from openimages_etl.orchestration.outcomes import fails_cleanly
from openimages_etl.storage.locations import display_url
from openimages_etl.storage.objects import ARCHIVE_PATTERNS
from openimages_etl.tasks.ledger import find_new_archives, record_outcome

OUTCOMES = ("published", "unchanged", "rejected", "failed")


@flow(name="export-new-archives")
@fails_cleanly
def export_new_archives(
    source: str, options: ExportOptions, patterns: tuple[str, ...] = ARCHIVE_PATTERNS
) -> list[dict[str, Any]]:
    """Export every archive under SOURCE that DEST has not exported yet in this version, one export run each.

    Args:
        source: Folder or prefix holding archives (absolute local path or fsspec URL), or one archive's URL.
        options: The options of each export (its name defaults to the archive's); DEST gets NAME.zip and its report.
        patterns: File-name patterns of the archives to export.
    """
    options.refuse_credentials(source)
    dest = options.dest.url
    at = locations(source=source, dest=dest)
    get_run_logger().info("Exporting the new archives under %s to %s", at["source"], at["dest"])
    resolved = storage_options(options.source), storage_options(options.dest)
    new = find_new_archives(source, patterns, dest, *resolved)
    outcomes = []
    for obj in new:
        state = export_open_images(source=obj.url, options=options, return_state=True)
        outcome = _outcome(state)
        if outcome["status"] != "failed":
            record_outcome(obj, outcome, dest, resolved[1])
        outcomes.append({"archive": display_url(obj.url), "version": obj.version, **outcome})
    if outcomes:
        create_table_artifact(
            table=outcomes, key="openimages-new-archives", description=f"Archives found new under {display_url(source)}"
        )
    summary = summarise(outcomes)
    not_published = [o for o in outcomes if o["status"] in ("rejected", "failed")]
    if not_published:
        raise OpenImagesETLError(f"{summary}: " + "; ".join(f"{o['archive']}: {o['error']}" for o in not_published))
    get_run_logger().info("%s", summary)
    return outcomes


def summarise(outcomes: list[dict[str, Any]]) -> str:
    """What the children did, counted by outcome: `3 archives new since the last run: 2 published, 1 unchanged`."""
    counts = Counter(o["status"] for o in outcomes)
    done = ", ".join(f"{counts[status]} {status}" for status in OUTCOMES if counts[status])
    return f"{len(outcomes)} archive{'' if len(outcomes) == 1 else 's'} new since the last run" + (
        f": {done}" if done else ""
    )


def _outcome(state: State) -> dict[str, Any]:
    """What one child run did: `published`, `unchanged` (DEST already held this export), `rejected` (the archive's own
    fault: final for this version) or `failed` (the destination's fault or a bug: tried again by the next run)."""
    result = state.result(raise_on_failure=False)
    if state.is_completed():
        return {"status": result["status"], "output": result["output"], "error": ""}
    final = isinstance(result, OpenImagesETLError) and not isinstance(result, PublishError)
    return {"status": "rejected" if final else "failed", "output": None, "error": f"{type(result).__name__}: {result}"}
