"""Shared fixtures: a real Prefect API (test harness), a real S3 endpoint (moto server on 127.0.0.1), sample data."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import settings

from openimages_etl.format.sample import make_sample

from .helpers import HERE, moto_server
from .helpers import prefect_api as prefect_api_running
from .helpers import prefect_server as prefect_server_running

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def pytest_configure(config):
    """Generated cases (hypothesis): 120 per property when everything runs, as in CI; 25 in the fast loop."""
    settings.register_profile("every-case", max_examples=120)
    settings.register_profile("fast-loop", max_examples=25)
    settings.load_profile("fast-loop" if config.getoption("markexpr") == "not slow" else "every-case")


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory):
    """One temporary Prefect server (SQLite) for the whole session (each xdist worker's own); flows run against it
    for real."""
    with prefect_api_running(tmp_path_factory.mktemp("prefect-api")):
        yield


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """A real `prefect server start` on 127.0.0.1 with its own PREFECT_HOME, shared by the end-to-end tests.
    Yields its API URL; its log is in the PREFECT_HOME folder."""
    with prefect_server_running(
        tmp_path_factory.mktemp("prefect-home"),
        ui=True,
        PREFECT_API_LOG_RETRYABLE_ERRORS="true",
        PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="5",
    ) as url:  # schedules within seconds, not a minute
        yield url


@pytest.fixture(scope="session")
def datumaro_python() -> str:
    """Datumaro's venv, created on first use (about two minutes) and cached in ~/.cache."""
    done = subprocess.run(
        ["bash", str(HERE / "datumaro" / "setup_venv.sh")], capture_output=True, text=True, timeout=1200
    )
    if done.returncode != 0:
        pytest.fail(f"could not install Datumaro for the import test:\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


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


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server on loopback; AWS_* variables point s3fs (and boto) at it."""
    with moto_server() as url, pytest.MonkeyPatch.context() as env:
        for name, value in {
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            env.setenv(name, value)
        yield url


@pytest.fixture
def s3_bucket(s3_endpoint):
    """A fresh bucket on the moto server; yields its name."""
    import s3fs

    name = f"bucket-{time.time_ns()}"
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint})
    fs.mkdir(name)
    fs.invalidate_cache()
    yield name
