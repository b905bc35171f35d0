"""End to end with a process work pool: `openimages-etl deploy --pool`, a run from the UI's form,
`prefect worker start --run-once`.

It upserts the deployments test_production.py serves (same names), so it runs after that module has stopped
its `serve` process: pytest runs modules in file-name order.
"""

from __future__ import annotations

import subprocess
import time

import fsspec
import pytest

from .e2e import BIN, PrefectREST, client_env, start
from .helpers import make_archive

pytestmark = pytest.mark.slow


def test_deployments_run_on_a_process_work_pool(prefect_server, s3_bucket, cvat_dir, tmp_path, capsys):
    env, api, pool = client_env(prefect_server, tmp_path), PrefectREST(prefect_server), "e2e-process-pool"
    deploy = [
        str(BIN / "openimages-etl"),
        "deploy",
        f"s3://{s3_bucket}/incoming",
        f"s3://{s3_bucket}/exports",
        "--pool",
        pool,
    ]
    missing = subprocess.run(deploy, env=env, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and f"prefect work-pool create {pool} --type process" in missing.stderr
    subprocess.run(
        [str(BIN / "prefect"), "work-pool", "create", pool, "--type", "process"],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    deployed = subprocess.run([*deploy, "--image-size", "300k"], env=env, capture_output=True, text=True, timeout=120)
    assert deployed.returncode == 0, deployed.stderr
    deployments = {
        name: api.deployment(flow, name)
        for flow, name in [
            ("export-open-images", "adhoc"),
            ("export-new-archives", "scheduled"),
            ("export-new-archives", "on-upload"),
        ]
    }
    assert {d["work_pool_name"] for d in deployments.values()} == {pool}
    assert deployments["adhoc"]["entrypoint"] == "openimages_etl.flows.export.export_open_images"
    assert deployments["on-upload"]["parameters"]["options"]["image_size"] == "300k"

    source = f"s3://{s3_bucket}/uploads/pooled.zip"
    fsspec.filesystem("s3").put_file(str(make_archive(cvat_dir, "zip")), source)
    submitted = time.time()
    options = {
        **deployments["adhoc"]["parameters"]["options"],
        "name": "via-pool",
    }  # the API merges top-level keys only
    created = api.create_run(deployments["adhoc"]["id"], {"source": source, "options": options})
    assert created.status_code == 201, created.text
    worker = start(["prefect", "worker", "start", "--pool", pool, "--run-once"], env, tmp_path / "worker.log")
    assert worker.wait(300) == 0, (tmp_path / "worker.log").read_text()[-3000:]
    run = api.run(created.json()["id"])
    assert run["state"]["type"] == "COMPLETED", run["state"]
    assert fsspec.filesystem("s3").exists(f"s3://{s3_bucket}/exports/via-pool.zip")
    with capsys.disabled():
        print(f"\n[e2e] process work pool, worker --run-once: submitted -> finished {time.time() - submitted:.1f} s")
