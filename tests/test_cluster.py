"""A Dask cluster with no shared disk (issue 13): a scheduler and two workers, each worker in its own mount namespace
with a private tmpfs over /tmp (its HOME and temp folder), sources, destinations and the work area on S3 (moto on
127.0.0.1), one `prefect server start`. The client's temp folder is watched: it must stay small."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from shlex import quote

import fsspec
import pytest

from .e2e import BIN, client_env, stop
from .helpers import datumaro_view, free_port, make_archive

pytestmark = pytest.mark.slow
CLIENT_TEMP_LIMIT = 4 << 20  # "a few MB": the client holds no copy of the source nor of the export


def _worker_command(scheduler: str, name: str, shared: Path | None) -> list[str]:
    """A dask worker that sees no disk of the client: /tmp is a fresh tmpfs of its own, HOME is in it; only `shared`
    (a folder of the client, when given) is mounted back at its own path, and the project's code and virtualenv
    when they live under /tmp (a CI checkout may): code, not data."""
    code = [Path(__file__).resolve().parents[1], Path(sys.prefix).resolve()]
    kept = [*([shared] if shared else []), *(c for c in code if c.is_relative_to("/tmp"))]
    hold = "".join(
        f"mkdir -p /mnt/oi-etl-{i} && mount --bind {quote(str(f))} /mnt/oi-etl-{i} && " for i, f in enumerate(kept)
    )
    back = "".join(
        f"mkdir -p {quote(str(f))} && mount --move /mnt/oi-etl-{i} {quote(str(f))} && " for i, f in enumerate(kept)
    )
    script = (
        f"{hold}mount -t tmpfs tmpfs /tmp && {back}mkdir -p /tmp/home && "
        f'exec "$0" -m distributed.cli.dask_worker {scheduler} --name {name} --nthreads 1 --nworkers 1 '
        "--no-dashboard --local-directory /tmp/dask"
    )
    return ["unshare", "-m", "sh", "-c", script, sys.executable]


@contextmanager
def dask_cluster(workers: int, logs: Path, env: dict[str, str], shared: Path | None = None) -> Iterator[str]:
    """`dask scheduler` and `workers` isolated `dask worker` processes; yields the scheduler's address. `logs` is a
    folder of the client: no worker sees it. `shared`, a folder under it, all of them do."""
    from distributed import Client

    address = f"tcp://127.0.0.1:{free_port()}"
    worker_env = {**env, "HOME": "/tmp/home", "TMPDIR": "/tmp", "PREFECT_HOME": "/tmp/home/.prefect"}
    worker_env.pop("PREFECT_API_URL", None)  # the workers get it from the flow (prefect-dask hands over its settings)
    with ExitStack() as stack:
        processes = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    address.rsplit(":", 1)[1],
                    "--no-dashboard",
                ],
                env=env,
                stdout=(logs / "scheduler.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
        ]
        stack.callback(lambda: [stop(p) for p in reversed(processes)])
        for n in range(workers):
            processes.append(
                subprocess.Popen(
                    _worker_command(address, f"w{n}", shared),
                    env=worker_env,
                    stdout=(logs / f"worker-{n}.log").open("wb"),
                    stderr=subprocess.STDOUT,
                )
            )
        with Client(address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=120)
            assert not any(client.run(os.path.exists, str(logs / "scheduler.log")).values())
        yield address


class FolderWatch:
    """The peak size of a folder (the client's TMPDIR) while a command runs, sampled every 0.2 s."""

    def __init__(self, folder: Path):
        self.folder, self.peak, self._done = folder, 0, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._done.wait(0.2):
            size = sum(f.stat().st_size for f in self.folder.rglob("*") if f.is_file() and not f.is_symlink())
            self.peak = max(self.peak, size)

    def __enter__(self) -> FolderWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()


def _client(arguments: list[str], env: dict[str, str], tmp: Path, log: Path) -> tuple[subprocess.CompletedProcess, int]:
    """An openimages-etl command with its own TMPDIR; the folder's peak size while it ran."""
    tmp.mkdir(parents=True, exist_ok=True)
    with FolderWatch(tmp) as watch:
        done = subprocess.run(
            [str(BIN / "openimages-etl"), *arguments],
            env={**env, "TMPDIR": str(tmp)},
            capture_output=True,
            text=True,
            timeout=900,
        )
    log.write_text(done.stdout + done.stderr)
    return done, watch.peak


@pytest.mark.parametrize(
    "work_area",
    [
        "s3",  # nothing shared: validate's work area given on S3, the export's the default under DEST
        "shared-folder",  # only the work area shared, the source read in place on S3
    ],
)
def test_export_and_validate_on_workers_without_a_shared_disk(
    cvat_dir, s3_bucket, prefect_server, datumaro_python, tmp_path, work_area
):
    s3 = fsspec.filesystem("s3")
    archive = make_archive(cvat_dir, "zip")
    s3.put_file(str(archive), f"{s3_bucket}/uploads/team.zip")
    source, dest = f"s3://{s3_bucket}/uploads/team.zip", f"s3://{s3_bucket}/exports"
    env = client_env(prefect_server, tmp_path / "client-home")
    shared = tmp_path / "shared" if work_area == "shared-folder" else None
    work = ["--work", str(shared / "work") if shared else f"s3://{s3_bucket}/work"]
    if shared:
        (shared / "work").mkdir(parents=True)
    with dask_cluster(2, tmp_path, env, shared) as address:
        validated, validate_peak = _client(
            ["validate", source, "--dask", address, *work],
            env,
            (shared or tmp_path) / "tmp-validate",
            tmp_path / "validate.log",
        )
        assert validated.returncode == 0, validated.stdout[-3000:] + validated.stderr[-3000:]
        exported, export_peak = _client(
            ["export", source, dest, "--dask", address, *(work if shared else [])],
            env,
            (shared or tmp_path) / "tmp-export",
            tmp_path / "export.log",
        )
        assert exported.returncode == 0, exported.stdout[-3000:] + exported.stderr[-3000:]
    if not shared:  # with a shared folder the work area is on the client's disk
        assert max(validate_peak, export_peak) < CLIENT_TEMP_LIMIT
    s3.invalidate_cache()
    if not shared:  # both work areas went with their runs
        assert not s3.find(f"{s3_bucket}/work") and not s3.find(f"{dest}/.openimages-etl/work")
    s3.get_file(f"{dest}/team.zip", str(tmp_path / "cluster.zip"))
    # the same source exported on threads in one process, the reference
    local = subprocess.run(
        [str(BIN / "openimages-etl"), "export", str(archive), str(tmp_path / "threads"), "--name", "team"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert local.returncode == 0, local.stderr[-3000:]
    with zipfile.ZipFile(tmp_path / "cluster.zip") as got:
        assert got.testzip() is None
    assert datumaro_view(datumaro_python, tmp_path / "cluster.zip") == datumaro_view(
        datumaro_python, tmp_path / "threads" / "team.zip"
    )


def test_an_existing_cluster_without_a_prefect_server_is_refused_before_the_run(cvat_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    done = subprocess.run(
        [str(BIN / "openimages-etl"), "validate", str(cvat_dir), "--dask", "tcp://127.0.0.1:1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "PREFECT_API_URL is not set" in done.stderr and "Traceback" not in done.stderr
