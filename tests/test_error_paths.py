"""How runs end on errors: an expected error (bad input, usage) shows its message and no traceback, on the terminal
and in the run's logs; `--verbose` and bugs show the traceback; local mode starts under CPU contention."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prefect import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogHandler

from openimages_etl.cli import main
from openimages_etl.errors import OpenImagesETLError
from openimages_etl.flows import export_open_images
from openimages_etl.options import ExportOptions
from openimages_etl.tasks import validate as validate_tasks

from . import hostile
from .e2e import BIN


def _unreadable(folder: Path) -> Path:
    """`folder` with a quote that never closes in line 4 of its bbox CSV."""
    bbox = folder / "annotations" / "train-annotations-bbox.csv"
    bbox.write_bytes(hostile.edit_cells(bbox.read_bytes(), {(4, "Source"): b'"xclick'}))
    return folder


def _invalid(folder: Path) -> Path:
    bbox = folder / "annotations" / "train-annotations-bbox.csv"
    bbox.write_bytes(hostile.edit_cells(bbox.read_bytes(), {(3, "XMin"): b"1.5"}))
    return folder


def _run_logs(flow_run_id) -> list[str]:
    """The messages of a flow run's logs, its task runs' included, as the Prefect API holds them."""
    APILogHandler().flush()  # logs reach the server in batches
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200, offset=0
        )
    return [log.message for log in logs]


SOURCES = {
    "unreadable-csv": _unreadable,
    "invalid-data": _invalid,
    "missing-source": lambda folder: folder / "nope.zip",
}


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.parametrize("case", sorted(SOURCES))
def test_an_expected_error_ends_the_run_failed_with_its_message_and_no_traceback(case, cvat_dir, tmp_path):
    options = ExportOptions(dest=str(tmp_path / "out"))
    state = export_open_images(source=str(SOURCES[case](cvat_dir)), options=options, return_state=True)
    error = state.result(raise_on_failure=False)
    assert state.is_failed() and isinstance(error, OpenImagesETLError) and state.message == str(error)
    logs = _run_logs(state.state_details.flow_run_id)
    assert any(str(error) in message for message in logs)
    assert not [message for message in logs if "Traceback" in message]


@pytest.mark.usefixtures("prefect_api")
def test_the_terminal_shows_the_message_and_verbose_adds_the_traceback(cvat_dir, capsys):
    source = str(_unreadable(cvat_dir))
    assert main(["validate", source]) == 2
    quiet = capsys.readouterr().err
    assert "openimages-etl: annotations/train-annotations-bbox.csv:4:" in quiet and "Traceback" not in quiet
    assert main(["validate", source, "--verbose"]) == 2
    verbose = capsys.readouterr().err
    assert "Traceback (most recent call last)" in verbose and "UnreadableFileError" in verbose


@pytest.mark.usefixtures("prefect_api")
def test_a_bug_keeps_its_traceback_in_the_run_logs_and_on_the_terminal(cvat_dir, tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):  # the fault: a bug inside a task
        raise KeyError("a bug")

    monkeypatch.setattr(validate_tasks, "build_keys", broken)
    options = ExportOptions(dest=str(tmp_path / "out"))
    state = export_open_images(source=str(cvat_dir), options=options, return_state=True)
    assert isinstance(state.result(raise_on_failure=False), KeyError)
    assert any(
        "Traceback" in message and "KeyError: 'a bug'" in message
        for message in _run_logs(state.state_details.flow_run_id)
    )
    capsys.readouterr()
    assert main(["export", str(cvat_dir), str(tmp_path / "out")]) == 4
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "openimages-etl: internal error (KeyError)" in err


@pytest.mark.slow
def test_local_mode_starts_its_server_on_a_busy_machine(sample_dirs, tmp_path):
    """No PREFECT_API_URL: the run starts a temporary server, which under load took longer than Prefect's 20 s."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PREFECT_API_URL", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS")
    }
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    busy = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)
    ]  # one per core of a 2-core CI box
    try:
        run = subprocess.run(
            [str(BIN / "openimages-etl"), "validate", str(sample_dirs["cvat"])],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
    finally:
        for process in busy:
            process.kill()
            process.wait()
    assert run.returncode == 0, run.stderr[-3000:]
    assert "valid:" in run.stdout
