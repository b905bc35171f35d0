"""Shared fixtures: a real Prefect API (test harness), a real S3 endpoint (moto server on 127.0.0.1), sample data."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from openimages_etl.sample import make_sample, zip_folder

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def prefect_api():
    """One temporary Prefect server (SQLite) for the whole session; flows run against it for real."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """A real `prefect server start` on 127.0.0.1 with its own PREFECT_HOME, shared by the end-to-end tests.
    Yields its API URL; its log is in the PREFECT_HOME folder."""
    import httpx

    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_API_LOG_RETRYABLE_ERRORS": "true",
           "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",  # schedules runs within seconds, not the default minute
           "PREFECT_UI_API_URL": url}  # the UI asks 127.0.0.1:4200 otherwise, whatever the port
    env.pop("PREFECT_API_URL", None)
    with (home / "server.log").open("wb") as log:
        server = subprocess.Popen([str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1",
                                   "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while server.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail(f"prefect server did not start:\n{(home / 'server.log').read_text()[-3000:]}")
        yield url
    finally:
        server.terminate()
        server.wait(30)


@pytest.fixture(scope="session")
def datumaro_python() -> str:
    """Datumaro's venv, created on first use (about two minutes) and cached in ~/.cache."""
    done = subprocess.run(["bash", str(HERE / "datumaro" / "setup_venv.sh")], capture_output=True, text=True, timeout=1200)
    if done.returncode != 0:
        pytest.fail(f"could not install Datumaro for the import test:\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


def datumaro_view(python: str, path: Path, *options: str) -> dict:
    """What Datumaro's importer sees in a zip or folder (tests/datumaro/dm_summary.py and its `options`)."""
    done = subprocess.run([python, str(HERE / "datumaro" / "dm_summary.py"), str(path), *options], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="session")
def sample_dirs(tmp_path_factory) -> dict[str, Path]:
    """The sample dataset in both layouts, built once; tests copy before changing them."""
    base = tmp_path_factory.mktemp("samples")
    return {layout: make_sample(base / layout, layout) for layout in ("cvat", "official")}


@pytest.fixture
def cvat_dir(sample_dirs, tmp_path) -> Path:
    return Path(shutil.copytree(sample_dirs["cvat"], tmp_path / "cvat"))


@pytest.fixture
def official_dir(sample_dirs, tmp_path) -> Path:
    return Path(shutil.copytree(sample_dirs["official"], tmp_path / "official"))


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server on loopback; AWS_* variables point s3fs (and boto) at it."""
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    env = {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("moto server did not start")
        yield url
    finally:
        server.terminate()
        server.wait(10)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def s3_bucket(s3_endpoint):
    """A fresh bucket on the moto server; yields its name."""
    import s3fs

    name = f"bucket-{time.time_ns()}"
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint})
    fs.mkdir(name)
    fs.invalidate_cache()
    yield name
