"""What every benchmark shares: run a command as a child, time it, read its peak RSS; a Prefect server; a table."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the tests' helpers, run as `python benchmarks/bench_*.py` from anywhere
from tests.helpers import prefect_server as tests_prefect_server  # noqa: E402

OURS = [sys.executable, str(HERE / "child.py")]
DATUMARO_PYTHON = (
    Path(os.environ.get("DATUMARO_VENV", Path.home() / ".cache/openimages-etl/datumaro-venv")) / "bin" / "python"
)


@dataclass(frozen=True)
class Run:
    """One child process: the seconds it reports for its work (imports excluded), its wall time, its peak RSS."""

    label: str
    seconds: float
    wall: float
    peak_mb: float
    output: dict


def measure(label: str, command: list[str], env: dict[str, str] | None = None) -> Run:
    """Run `command`; it prints one JSON object with `seconds` as its last stdout line. Peak RSS from wait4."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(command, stdout=out, stderr=err, env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(child.pid, 0)  # usage covers the child and the children it waited for
        child.returncode = code = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        lines = out.read().decode().strip().splitlines()
        errors = err.read().decode(errors="replace")
    if code != 0 or not lines:
        raise SystemExit(f"{label} failed ({code}):\n{errors[-4000:]}")
    report = json.loads(lines[-1])
    return Run(label, report["seconds"], wall, usage.ru_maxrss / 1024, report)


def datumaro_available() -> bool:
    if DATUMARO_PYTHON.exists():
        return True
    print(f"Datumaro's venv not found at {DATUMARO_PYTHON}: run tests/datumaro/setup_venv.sh first", file=sys.stderr)
    return False


@contextlib.contextmanager
def prefect_server():
    """A Prefect API on 127.0.0.1 for the whole benchmark, so flow runs do not pay for starting one each.
    Its services stay on: task runs reach the database through them (the stage timings read them back)."""
    home = tempfile.mkdtemp(prefix="bench-prefect-")
    with tests_prefect_server(Path(home)) as url:  # started as the tests start theirs
        yield {"PREFECT_API_URL": url, "PREFECT_HOME": home, "PREFECT_LOGGING_LEVEL": "WARNING"}


def machine() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{date.today()}, {os.cpu_count()} cores, {memory:.0f} GB RAM, Python {platform.python_version()}, "
        f"load {os.getloadavg()[0]:.1f}"
    )


def table(runs: list[Run]) -> str:
    lines = [f"{'run':44s} {'work s':>8s} {'wall s':>8s} {'peak RSS MB':>12s}"]
    lines += [f"{r.label:44s} {r.seconds:8.2f} {r.wall:8.2f} {r.peak_mb:12.0f}" for r in runs]
    return "\n".join(lines)


def verdict(name: str, value: float, goal: float, higher_is_better: bool = True) -> str:
    met = value >= goal if higher_is_better else value <= goal
    sign = ">=" if higher_is_better else "<="
    return f"{name}: {value:.2f} (target {sign} {goal:g}) {'MET' if met else 'NOT MET'}"
