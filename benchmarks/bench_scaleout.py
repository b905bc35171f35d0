"""Target 4: the export flow on prefect-dask's DaskTaskRunner (LocalCluster), 1 worker against 2.

Input: photo-like 640x480 JPEGs exported at 300k (decode, resize, JPEG q72 per image: CPU in Python
threads that hold the GIL between Pillow calls, so processes are what use the cores). The image
stage is timed from the task runs (first start to last end of the `images-*` runs).
Goal: efficiency = T(1 worker) / (2 x T(2 workers)) >= 80 % on the image stage.

    python benchmarks/bench_scaleout.py [--images 4000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile

from common import OURS, Run, machine, measure, prefect_server, table, verdict
from datasets import photo_dataset

from openimages_etl.config import images_per_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    source = photo_dataset(args.images, 640, 480)
    print(
        f"{machine()}\ninput: {args.images} JPEGs of 640x480 in "
        f"{-(-args.images // images_per_task(args.images))} tasks, exported at 300k ({source})"
    )
    out = tempfile.mkdtemp(prefix="bench-scaleout-")
    runs: dict[int, Run] = {}
    try:
        with prefect_server() as env:
            for _ in range(args.repeat):
                for workers in (1, 2):
                    run = measure(
                        f"export on Dask, {workers} worker(s)",
                        [
                            *OURS,
                            "export",
                            str(source),
                            f"{out}/{workers}",
                            "--image-size",
                            "300k",
                            "--dask",
                            "local",
                            "--workers",
                            str(workers),
                        ],
                        env,
                    )
                    if workers not in runs or run.output["stages"]["images"] < runs[workers].output["stages"]["images"]:
                        runs[workers] = run
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(table(list(runs.values())))
    print({w: r.output["stages"] for w, r in runs.items()})
    one, two = (runs[w].output["stages"]["images"] for w in (1, 2))
    print(f"image stage: {one:.2f} s on 1 worker, {two:.2f} s on 2 workers")
    print(verdict("image stage efficiency 1 -> 2 workers", one / (2 * two), 0.8))
    print(verdict("whole flow efficiency 1 -> 2 workers", runs[1].seconds / (2 * runs[2].seconds), 0.8))


if __name__ == "__main__":
    main()
