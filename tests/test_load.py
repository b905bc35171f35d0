"""Load: 20 flow runs at once against one Prefect server (SQLite), half of them repeats of the other half."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
import pytest

from openimages_etl.flows import export_open_images

from .conftest import make_archive

RUNS, NAMES = 20, 10


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_twenty_concurrent_runs_all_complete_and_each_export_is_published_once(cvat_dir, tmp_path, capfd):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    source, dest = str(make_archive(cvat_dir, "zip")), tmp_path / "dest"
    start = threading.Barrier(RUNS)

    def run(number: int):
        start.wait()  # all 20 create their flow runs at the same moment
        return export_open_images(source=source, dest=str(dest), name=f"ds{number % NAMES}", return_state=True)

    started = time.monotonic()
    with ThreadPoolExecutor(RUNS) as pool:
        states = list(pool.map(run, range(RUNS)))
    elapsed = time.monotonic() - started
    reports = [state.result() for state in states]
    assert sorted(r["status"] for r in reports) == ["published"] * NAMES + ["unchanged"] * NAMES
    assert len(list(dest.glob("*.zip"))) == NAMES and not list(dest.glob(".*"))
    with get_client(sync_client=True) as client:
        ids = [state.state_details.flow_run_id for state in states]
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)),
                                     sort=FlowRunSort.EXPECTED_START_TIME_ASC, limit=RUNS, offset=0)
    assert sorted(r.state.type.value for r in runs) == ["COMPLETED"] * RUNS
    captured = capfd.readouterr()
    assert "database is locked" not in captured.out + captured.err
    with capfd.disabled():
        print(f"\n{RUNS} concurrent runs completed in {elapsed:.1f} s")
