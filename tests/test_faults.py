"""Faults: transient S3 errors retried, runs killed mid-way, a full or forbidden DEST, two runs at once."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import s3fs

from openimages_etl.cli import main
from openimages_etl.errors import PublishError, SourceError, UnreadableFileError, is_transient, storage_error
from openimages_etl.flows import export_open_images
from openimages_etl.options import Access, ExportOptions, Location
from openimages_etl.output import package as package
from openimages_etl.storage.runlock import export_lock

from .faultproxy import FaultProxy, Rule
from .helpers import make_archive

pytestmark = pytest.mark.usefixtures("prefect_api")
FAST_RETRIES = {"config_kwargs": {"retries": {"max_attempts": 4, "mode": "standard"}}}


@pytest.fixture
def proxy(s3_endpoint):
    proxy = FaultProxy(s3_endpoint)
    proxy.url = proxy.start()
    yield proxy
    proxy.stop()


def _s3(endpoint: str) -> s3fs.S3FileSystem:
    return s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint}, skip_instance_cache=True)


def _through(proxy: FaultProxy) -> dict:
    return {"client_kwargs": {"endpoint_url": proxy.url}, **FAST_RETRIES, "skip_instance_cache": True}


def _valid_zip(fs: s3fs.S3FileSystem, path: str) -> bool:
    with fs.open(path, "rb") as handle, zipfile.ZipFile(handle) as archive:
        return archive.testzip() is None


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (ConnectionResetError(), True),
        (TimeoutError(), True),
        (OSError("503 SlowDown"), True),
        (OSError(errno.ENOSPC, "No space left on device"), False),
        (PermissionError(), False),
        (FileNotFoundError(), False),
        (storage_error(PublishError, "x", ConnectionResetError()), True),
        (storage_error(PublishError, "x", OSError(errno.EACCES, "denied")), False),
        (UnreadableFileError("a.csv", 3, "not UTF-8 text"), False),
        (SourceError("bad"), False),
        (KeyError("bug"), False),
    ],
)
def test_only_transient_errors_are_retried(error, transient):
    assert is_transient(error) is transient


@pytest.mark.slow
def test_transient_s3_faults_are_retried_and_the_run_completes(proxy, s3_bucket, official_dir):
    """Source and DEST behind the proxy: every 4th request fails (503 SlowDown, 500, connection reset in turn)."""
    fs = _s3(proxy.target)
    fs.put(str(official_dir) + "/", f"{s3_bucket}/src/", recursive=True)
    proxy.rules = [Rule(r".", "mix", every=4)]
    options = ExportOptions(
        source=Access(options=_through(proxy)),
        dest=Location(url=f"s3://{s3_bucket}/out", options=_through(proxy)),
        name="ds",
    )
    report = export_open_images(source=f"s3://{s3_bucket}/src", options=options)
    assert report["status"] == "published"
    assert report["subsets"]["train"] == {"images": 6, "boxes": 12, "labels": 12, "masks": 6}
    assert proxy.injected >= 15, proxy.injected
    assert _valid_zip(_s3(proxy.target), f"{s3_bucket}/out/ds.zip")
    print(f"faults survived: {proxy.injected} of {proxy.requests} requests")


@pytest.mark.slow
def test_a_fault_burst_longer_than_the_clients_retries_is_retried_by_the_task(proxy, s3_bucket, cvat_dir, caplog):
    """The zip's upload fails 5 times in a row: the storage client gives up after 4 tries, Prefect's task retry
    gets through (the task's own log says so: the session's API does not record task runs)."""
    proxy.rules = [Rule(r"^(PUT|POST) /[^ ]*/out/ds\.zip", "500", times=5)]
    options = ExportOptions(dest=Location(url=f"s3://{s3_bucket}/out", options=_through(proxy)), name="ds")
    state = export_open_images(source=str(make_archive(cvat_dir, "zip")), options=options, return_state=True)
    assert state.result()["status"] == "published" and proxy.injected == 5
    assert _valid_zip(_s3(proxy.target), f"{s3_bucket}/out/ds.zip")
    retries = [r.getMessage() for r in caplog.records if getattr(r, "task_run_name", None) == "zip-ds"]
    assert [m for m in retries if "Retry 1/" in m] and not [m for m in retries if "Retry 2/" in m]


def _cli(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "openimages_etl.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("step", "pattern"),
    [
        ("convert", r"^GET /[^ ]*/src/images/"),
        ("upload", r"^(PUT|POST) /[^ ]*/out/ds\.zip"),
        ("report", r"^PUT /[^ ]*/out/ds\.report\.json"),
    ],
)
def test_a_run_killed_mid_way_leaves_no_partial_export_and_the_next_run_completes(
    step, pattern, proxy, s3_bucket, cvat_dir
):
    from prefect.settings import PREFECT_API_URL

    fs = _s3(proxy.target)
    fs.put(str(cvat_dir) + "/", f"{s3_bucket}/src/", recursive=True)
    options = json.dumps(_through(proxy))
    args = [
        "export",
        f"s3://{s3_bucket}/src",
        f"s3://{s3_bucket}/out",
        "--name",
        "ds",
        "--source-options",
        options,
        "--dest-options",
        options,
    ]
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    proxy.rules = [Rule(pattern, "hold", times=1)]
    run = _cli(args, env)
    assert proxy.held.wait(120), run.communicate()[0]
    run.send_signal(signal.SIGKILL)
    run.wait(30)
    proxy.release.set()
    fs.invalidate_cache()
    left = sorted(p.rsplit("/", 1)[1] for p in fs.ls(f"{s3_bucket}/out")) if fs.exists(f"{s3_bucket}/out") else []
    # A zip is only ever there whole; killed while writing the report, the zip is there and the report is not.
    assert [n for n in left if n.endswith(".zip") or n.endswith((".json", ".md"))] == (
        ["ds.zip"] if step == "report" else []
    ), left
    if step == "report":
        assert _valid_zip(fs, f"{s3_bucket}/out/ds.zip")
    again = _cli(args, env)
    output = again.communicate(timeout=300)[0]
    assert again.returncode == 0, output
    fs.invalidate_cache()
    report = json.loads(fs.cat_file(f"{s3_bucket}/out/ds.report.json"))
    assert report["status"] == "published" and _valid_zip(fs, f"{s3_bucket}/out/ds.zip")
    assert not [p for p in fs.ls(f"{s3_bucket}/out") if ".part-" in p]  # the killed run's partial zip went too


@pytest.mark.parametrize("fault", [errno.ENOSPC, pytest.param(errno.EACCES, marks=pytest.mark.slow)])
def test_a_full_or_forbidden_destination_is_a_clear_error_and_nothing_half_written(
    fault, cvat_dir, tmp_path, monkeypatch, capsys
):
    def failing_write(archive, *args, **kwargs):  # the fault only: some of the zip's bytes land, then the disk says no
        archive.fp.write(b"x" * 1000)
        raise OSError(fault, os.strerror(fault))

    monkeypatch.setattr(package, "write_deflated", failing_write)
    dest = tmp_path / "dest"
    assert main(["export", str(cvat_dir), str(dest), "--name", "ds"]) == 3
    assert os.strerror(fault) in capsys.readouterr().err
    assert list(dest.iterdir()) == []


def test_leftovers_of_a_killed_local_publish_are_removed_by_the_next_run(cvat_dir, tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / ".ds.zip.part-deadbeef").write_bytes(b"half a zip")
    report = export_open_images(source=str(cvat_dir), options=ExportOptions(dest=str(dest), name="ds"))
    assert report["run"]["leftovers_removed"] == 1
    assert not list(dest.glob(".*")) and {"ds.report.json", "ds.report.md", "ds.zip"} <= {
        p.name for p in dest.iterdir()
    }


@pytest.mark.slow
def test_two_runs_of_the_same_export_at_once_publish_one_export(cvat_dir, tmp_path):
    source, dest = str(make_archive(cvat_dir, "zip")), str(tmp_path / "dest")
    with ThreadPoolExecutor(2) as pool, export_lock(dest, "ds"):  # held here so that both runs queue behind it
        futures = [
            pool.submit(export_open_images, source=source, options=ExportOptions(dest=dest, name="ds"))
            for _ in range(2)
        ]
        time.sleep(5)
    reports = [future.result() for future in futures]
    assert sorted(r["status"] for r in reports) == ["published", "unchanged"]
    unchanged = next(r for r in reports if r["status"] == "unchanged")
    assert "already holds this export" in unchanged["note"] and unchanged["run"]["lock_waited_s"] > 1
    assert sorted(p.name for p in Path(dest).glob("*.zip")) == ["ds.zip"]
    published = json.loads((Path(dest) / "ds.report.json").read_text())
    assert published["run"]["idempotency_key"] == unchanged["run"]["idempotency_key"]
    options = ExportOptions(dest=dest, name="ds", image_size="300k")
    other = export_open_images(source=source, options=options)  # other parameters: a new export
    assert other["status"] == "published"
