"""Helpers of the end-to-end tests: the Prefect REST calls the UI makes, our commands as processes, waiting."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")
BIN = Path(sys.executable).parent


class PrefectREST:
    """The server's REST API, called the way the UI calls it."""

    def __init__(self, url: str):
        # SQLite under load answers "database is locked" as a 503: retry as Prefect's own client does
        self.http = httpx.Client(base_url=url, timeout=30, transport=_Retrying())

    def deployment(self, flow: str, name: str) -> dict[str, Any]:
        response = self.http.get(f"/deployments/name/{flow}/{name}")
        response.raise_for_status()
        return response.json()

    def create_run(self, deployment_id: str, parameters: dict[str, Any]) -> httpx.Response:
        """The UI's "Run > Custom run" submit: POST /deployments/{id}/create_flow_run."""
        return self.http.post(
            f"/deployments/{deployment_id}/create_flow_run",
            json={"parameters": parameters, "state": {"type": "SCHEDULED", "message": "Run from the Prefect UI"}},
        )

    def runs(self, deployment_id: str, states: list[str] | None = None) -> list[dict[str, Any]]:
        runs_filter: dict[str, Any] = {"deployment_id": {"any_": [deployment_id]}}
        if states:
            runs_filter["state"] = {"type": {"any_": states}}
        response = self.http.post(
            "/flow_runs/filter", json={"flow_runs": runs_filter, "sort": "EXPECTED_START_TIME_ASC"}
        )
        response.raise_for_status()
        return response.json()

    def run(self, run_id: str) -> dict[str, Any]:
        return self.http.get(f"/flow_runs/{run_id}").json()

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        return self.http.post("/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run_id]}}}).json()

    def events(self, name: str, resource_id: str) -> list[dict[str, Any]]:
        body = {"filter": {"event": {"name": [name]}, "resource": {"id": [resource_id]}}}
        return self.http.post("/events/filter", json=body).json()["events"]

    def wait_finished(self, run_id: str, timeout: float = 180) -> dict[str, Any]:
        return wait_for(
            lambda: (
                (run := self.run(run_id))["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") and run
            ),
            timeout,
            f"flow run {run_id} to finish",
        )


class _Retrying(httpx.HTTPTransport):
    """Send again after a 503, a few times with growing pauses."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(5):
            response = super().handle_request(request)
            if response.status_code != 503 or attempt == 4:
                return response
            response.close()
            time.sleep(1 + attempt)
        return response


def wait_for(check: Callable[[], T], timeout: float, what: str, every: float = 0.5) -> T:
    """Call `check` until it returns something true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def client_env(api_url: str, home: Path) -> dict[str, str]:
    """The environment of a process talking to the test server (the AWS_* variables point at moto)."""
    return {
        **os.environ,
        "PREFECT_API_URL": api_url,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
    }


def start(arguments: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> subprocess.Popen:
    """A command from this virtualenv's bin/ (openimages-etl, prefect) in the background, output to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(BIN / arguments[0]), *arguments[1:]], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd
        )


@contextmanager
def running(
    arguments: list[str], env: dict[str, str], log: Path, cwd: Path | None = None
) -> Iterator[subprocess.Popen]:
    """`start` for the length of a with-block, then `stop`."""
    process = start(arguments, env, log, cwd)
    try:
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    """Ctrl-C (what a user does to serve, watch and relay), then kill if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
