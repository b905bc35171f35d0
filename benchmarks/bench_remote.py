"""Issue 13's figures: an export from S3 to S3 (moto on 127.0.0.1) through the CLI, as a user runs it.

1. The machine running the flow: peak size of the client's TMPDIR (sampled every 0.2 s) and peak RSS of the
   client process itself (its VmHWM), as fractions of the archive, on `--dask` (a LocalCluster: 2 workers on this
   2-core machine) and without Dask. Goal: a small fraction. The work area is on S3 (`--work`), as on a cluster;
   a LocalCluster's workers inherit the client's TMPDIR, so whatever they write locally counts too.
2. Whole-flow efficiency from 1 to 2 workers with nothing shared: a `dask scheduler` and 1 or 2 `dask worker`
   processes, each in its own mount namespace (tests/test_cluster.py), the work area under DEST on S3.
   Efficiency = T1 / (2 x T2), T the command's wall time. Goal >= 80 %.

Input: a zip of photo-like 1024x768 JPEGs (~150 KB each, two boxes per image), exported at original size. moto
answers each range read of the zip by copying the whole object, so it paces those runs on a small machine; `--folder`
puts the dataset on S3 as one object per file, and `--image-size 300k` gives the workers CPU work of their own.

    python benchmarks/bench_remote.py [--images 7000] [--small] [--client-only | --cluster-only]
                                      [--folder] [--image-size 300k] [--width 1632 --height 1224]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import fsspec
from common import machine, prefect_server, verdict
from datasets import photo_dataset

from tests.e2e import BIN
from tests.helpers import make_archive, moto_server
from tests.test_cluster import FolderWatch, dask_cluster

BUCKET = "bench"


class PeakRSS:
    """The peak RSS of one process (its own, not its children's): VmHWM from /proc, read every 0.2 s."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._done = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._done.wait(0.2):
            try:
                status = Path(f"/proc/{self.pid}/status").read_text()
            except OSError:  # exited
                return
            line = next((line for line in status.splitlines() if line.startswith("VmHWM:")), None)
            if line:
                self.peak = max(self.peak, int(line.split()[1]) * 1024)

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return self.peak


CPU_CLASSES = {
    "dask_worker": "workers",
    "multiprocessing": "workers",  # the process a nanny starts for its worker
    "moto": "moto",
    "prefect": "Prefect server",
    "dask_scheduler": "scheduler",
}


def cpu_by_class() -> dict[str, float]:
    """CPU seconds (user + system) so far of the processes alive now, by CPU_CLASSES (the first match of the
    command line), the rest as "other"; and the whole machine's busy seconds from /proc/stat."""
    tick = os.sysconf("SC_CLK_TCK")
    seconds: dict[str, float] = {}
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, ValueError):  # not a process, or gone
            continue
        kind = next((name for key, name in CPU_CLASSES.items() if key in command), "other")
        seconds[kind] = seconds.get(kind, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    user, nice, system, idle, iowait, *rest = map(int, Path("/proc/stat").read_text().split("\n")[0].split()[1:])
    seconds["machine"] = (user + nice + system + sum(rest[:3])) / tick
    return seconds


def export(label: str, arguments: list[str], env: dict[str, str], scratch: Path, size: int) -> float:
    """`openimages-etl export ...` with a TMPDIR of its own; prints its wall seconds, the peak of its TMPDIR and of its
    RSS (also over `size`, the archive's), and the load; returns the wall seconds."""
    tmp = scratch / label.replace(" ", "-")
    tmp.mkdir(parents=True)
    started, cpu_before = time.perf_counter(), cpu_by_class()
    with FolderWatch(tmp) as disk, (scratch / f"{tmp.name}.log").open("w+") as log:
        client = subprocess.Popen(
            [str(BIN / "openimages-etl"), "export", *arguments],
            env={**env, "TMPDIR": str(tmp)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        rss = PeakRSS(client.pid)
        _, status, usage = os.wait4(client.pid, 0)  # its own CPU time, which /proc no longer has once it exited
        client.returncode = code = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        cpu = {kind: spent - cpu_before.get(kind, 0.0) for kind, spent in cpu_by_class().items()}
        peak_rss = rss.stop()
        log.seek(0)
        output = log.read()
    if code != 0:
        raise SystemExit(f"{label} failed ({code}):\n{output[-4000:]}")
    print(
        f"{label:28s} {wall:8.1f} {disk.peak / 2**20:15.1f} {disk.peak / size:10.3f} {peak_rss / 2**20:14.0f} "
        f"{peak_rss / size:10.3f} {os.getloadavg()[0]:6.1f}",
        flush=True,
    )
    busy = cpu.pop("machine")
    shares = ", ".join(f"{kind} {spent:.1f}" for kind, spent in sorted(cpu.items(), key=lambda item: -item[1]))
    print(
        f"{'':28s} CPU s: client {usage.ru_utime + usage.ru_stime:.1f}, {shares}; the machine busy {busy:.1f} s "
        f"of {os.cpu_count() * wall:.1f} ({busy / (os.cpu_count() * wall):.0%})",
        flush=True,
    )
    return wall


def source_of(images: int, width: int, height: int, folder: bool) -> Path:
    """The dataset's folder, or its zip, built once into the benchmarks' cache."""
    dataset = photo_dataset(images, width, height)
    target = dataset.with_suffix(".zip")  # where make_archive writes it
    return dataset if folder else target if target.exists() else make_archive(dataset, "zip")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=7000, help="1024x768 JPEGs in the archive (7000: about 1 GB)")
    parser.add_argument("--small", action="store_true", help="a quick check: 300 images (about 45 MB)")
    parser.add_argument("--client-only", action="store_true", help="part 1 only: the client's disk and memory")
    parser.add_argument("--cluster-only", action="store_true", help="part 2 only: 1 -> 2 workers, nothing shared")
    parser.add_argument("--folder", action="store_true", help="the dataset as one S3 object per file, not a zip")
    parser.add_argument("--image-size", default="original", help="the export's --image-size (300k: CPU work)")
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=768)
    args = parser.parse_args()
    local = source_of(300 if args.small else args.images, args.width, args.height, args.folder)
    size = sum(f.stat().st_size for f in local.rglob("*") if f.is_file()) if args.folder else local.stat().st_size
    what = "a folder, one object per file" if args.folder else "a zip"
    print(f"{machine()}\ninput: {local.name}, {what}, {size / 2**20:.0f} MB, image size {args.image_size}", flush=True)
    print(
        f"{'run':28s} {'wall s':>8s} {'peak TMPDIR MB':>15s} {'/ archive':>10s} {'client RSS MB':>14s} "
        f"{'/ archive':>10s} {'load':>6s}",
        flush=True,
    )
    scratch = Path(tempfile.mkdtemp(prefix="bench-remote-"))
    try:
        with moto_server() as endpoint, prefect_server() as prefect:
            aws = {
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
            }
            os.environ.update(aws)  # s3fs here and in the cluster's processes
            env = {**os.environ, **prefect, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
            s3 = fsspec.filesystem("s3", client_kwargs={"endpoint_url": endpoint})
            s3.mkdir(BUCKET)
            source, out = f"s3://{BUCKET}/uploads/{local.name}", f"s3://{BUCKET}/exports"
            if args.folder:
                s3.put(str(local), source, recursive=True)
            else:
                s3.put_file(str(local), source)
            sized = ["--image-size", args.image_size]
            client_runs = {
                "--dask (LocalCluster)": [f"{out}/dask", "--dask", "--work", f"s3://{BUCKET}/work/dask"],
                "no Dask (threads)": [f"{out}/threads", "--work", f"s3://{BUCKET}/work/threads"],
            }
            for name, arguments in () if args.cluster_only else client_runs.items():
                export(name, [source, *arguments, *sized], env, scratch, size)
            cluster = {}
            for workers in () if args.client_only else (1, 2):
                with dask_cluster(workers, scratch, env) as address:
                    arguments = [source, f"{out}/cluster{workers}", "--dask", address, *sized]  # work area: under DEST
                    cluster[workers] = export(f"cluster of {workers}", arguments, env, scratch, size)
            s3.invalidate_cache()
            exported = {path: s3.size(path) for path in s3.find(out) if path.endswith(".zip")}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"exports on S3: {', '.join(f'{p} {n / 2**20:.0f} MB' for p, n in sorted(exported.items()))}")
    print(f"load after the runs: {os.getloadavg()}")
    if cluster:
        print(verdict("whole flow efficiency 1 -> 2 workers, nothing shared", cluster[1] / (2 * cluster[2]), 0.8))


if __name__ == "__main__":
    main()
