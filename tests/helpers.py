"""Plain helpers the tests share (fixtures stay in conftest.py). `benchmarks/` starts its Prefect server with
`prefect_server` too, so it imports nothing from pytest."""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from importlib import metadata
from pathlib import Path
from unittest import mock

import fsspec
import numpy as np
from PIL import Image

from openimages_etl.errors import Failure
from openimages_etl.format.layout import discover
from openimages_etl.format.sample import zip_folder
from openimages_etl.format.validation import build_keys, validate_table
from openimages_etl.storage.locations import DatasetRoot

HERE = Path(__file__).parent
ANN = "annotations"  # the CVAT layout's folder of CSVs
CACHE = Path.home() / ".cache" / "openimages-etl"
# What the harness's server would do first on an empty database, and the copy it starts on already holds.
READY_DATABASE = {
    "PREFECT_SERVER_DATABASE_MIGRATE_ON_START": "false",
    "PREFECT_SERVER_REGISTER_BLOCKS_ON_START": "false",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_serving(url: str, process: subprocess.Popen, timeout: float, what: str) -> None:
    """Until `url` answers 200; fails if `process` exits first."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:  # not listening yet, or not ready (an HTTPError is an OSError)
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not start within {timeout:g} s (exit code {process.poll()})")


@contextmanager
def prefect_server(home: Path, ui: bool = False, **settings: str) -> Iterator[str]:
    """`prefect server start` on a free port of 127.0.0.1 with its own PREFECT_HOME (SQLite database, log in
    home/server.log) until the block ends; yields its API URL. `settings`: more PREFECT_* variables."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **settings}
    env.pop("PREFECT_API_URL", None)
    if ui:
        env["PREFECT_UI_API_URL"] = url  # the UI asks 127.0.0.1:4200 otherwise, whatever the port
    home.mkdir(parents=True, exist_ok=True)
    with (home / "server.log").open("wb") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *([] if ui else ["--no-ui"]),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        try:
            wait_serving(f"{url}/health", server, 120, "prefect server")
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}:\n{(home / 'server.log').read_text()[-3000:]}") from None
        yield url
    finally:
        server.terminate()
        server.wait(30)


@contextmanager
def prefect_api(folder: Path, timeout: int = 120, task_runs: bool = False) -> Iterator[None]:
    """Prefect's test harness (a temporary server, PREFECT_API_URL pointing at it) on a copy of `migrated_database()`
    in `folder`: the server starts in about half the CPU time it takes to migrate an empty database and register the
    block types. Unless `task_runs`, the server does not record task runs from their events: that is more than half
    its CPU time in a flow run of the sample (1.1 of 1.9 s), and only a test that reads task runs back needs it."""
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL
    from prefect.testing.utilities import prefect_test_harness

    folder.mkdir(parents=True, exist_ok=True)
    database = folder / "prefect-test.db"  # the harness's name for it, in the folder it takes from mkdtemp
    shutil.copyfile(migrated_database(timeout), database)
    with ExitStack() as stack:
        with (
            mock.patch("prefect.testing.utilities.mkdtemp", return_value=str(folder)),
            mock.patch.dict(
                os.environ,
                {**READY_DATABASE, "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED": str(task_runs).lower()},
            ),
        ):  # the environment is restored once the server runs: a CLI a test starts with its own server migrates;
            # the session's Prefect settings keep READY_DATABASE, which nothing reads once this server is up
            stack.enter_context(prefect_test_harness(timeout))
        if not PREFECT_SERVER_DATABASE_CONNECTION_URL.value().endswith(str(database)):
            raise RuntimeError(f"Prefect's test harness no longer puts its database at {database}")
        yield


def migrated_database(timeout: int = 120) -> Path:
    """A Prefect database that a temporary server migrated and registered its block types in, built once per install
    (the versions of Prefect and of the collections whose blocks it registers name it) in ~/.cache/openimages-etl."""
    from prefect.testing.utilities import prefect_test_harness

    collections = {(e.dist.name, e.dist.version) for e in metadata.entry_points(group="prefect.collections")}
    key = hashlib.sha256(repr(sorted({("prefect", metadata.version("prefect")), *collections})).encode()).hexdigest()
    target = CACHE / "prefect-db" / f"{key[:16]}.db"
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / f"{key[:16]}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one xdist worker builds it, the other waits for it
        if not target.exists():
            build = tempfile.mkdtemp()  # the harness removes it at exit
            with mock.patch("prefect.testing.utilities.mkdtemp", return_value=build), prefect_test_harness(timeout):
                pass
            partial = target.with_suffix(".partial")
            with closing(sqlite3.connect(Path(build) / "prefect-test.db")) as source:
                if not source.execute("SELECT count(*) FROM block_type").fetchone()[0]:
                    raise RuntimeError(f"Prefect's test server registered no block type in {build}")
                with closing(sqlite3.connect(partial)) as copy:
                    source.backup(copy)  # one file, whatever its write-ahead log still held
            os.replace(partial, target)
    return target


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 server on a free port of 127.0.0.1 until the block ends; yields its endpoint URL."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_serving(f"http://127.0.0.1:{port}/", server, 30, "moto server")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


TAR_COMPRESSION = {"tar": "", "tar.gz": "gz", "tgz": "gz", "tar.bz2": "bz2", "tar.xz": "xz"}


def make_archive(folder: Path, kind: str) -> Path:
    """`folder` as a zip or a tar (`kind` tar, tar.gz, tgz, tar.bz2 or tar.xz) next to it."""
    if kind == "zip":
        return zip_folder(folder, folder.with_suffix(".zip"))
    target = folder.parent / f"{folder.name}.{kind}"
    with tarfile.open(target, f"w:{TAR_COMPRESSION[kind]}") as archive:
        for path in sorted(folder.rglob("*")):
            archive.add(path, path.relative_to(folder).as_posix(), recursive=False)
    return target


def datumaro_view(python: str, path: Path, *options: str) -> dict:
    """What Datumaro's importer sees in a zip or folder (tests/datumaro/dm_summary.py and its `options`)."""
    done = subprocess.run(
        [python, str(HERE / "datumaro" / "dm_summary.py"), str(path), *options],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def validate(folder: Path, work: Path) -> list[Failure]:
    """The checks across files and the per-table checks on a folder, as plain functions (no Prefect): every failure."""
    layout = discover(DatasetRoot(str(folder)), work / "index")
    keys = build_keys(layout, work)
    checks = [validate_table(layout, table, keys, work) for table in layout.tables]
    return keys.failures.samples + [f for c in checks for f in c.failures.samples]


def noise_jpeg(width: int, height: int, quality: int = 95) -> bytes:
    """A JPEG of random pixels (the worst case for size)."""
    rng = np.random.default_rng(1)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width, 3), np.uint8)).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def zip_members(zip_path: Path | str, storage_options: dict | None = None) -> dict[str, bytes]:
    """Each member's bytes, in the zip's order (its content: zipfile's writestr stamps the time)."""
    with fsspec.open(str(zip_path), "rb", **(storage_options or {})) as handle, zipfile.ZipFile(handle) as archive:
        assert archive.testzip() is None
        return {name: archive.read(name) for name in archive.namelist()}
