"""Target 2: validation and partitioning at full size, against a bare `pyarrow.csv.read_csv` of the bbox CSV.

The dataset is Google's V4 train files at their real size: a 14.6 M-row (1.19 GB) bbox CSV, the 1.74 M-row
image list with all 12 columns, the 600 boxable classes. Every check is on, those across files included.
Goals: `validate` and partitioning each within 2x the bare read, each with peak RSS <= 2 GB.

    python benchmarks/bench_validate.py [--rows 14600000] [--images 1740000] [--dask]

With --dask, `validate` and the export's partition stage on a LocalCluster of 1 and of 2 one-thread workers instead
(issue 13 §5: on 2 the bbox CSV and the image list go as 2 byte ranges each), and the ratio of the two.
"""

from __future__ import annotations

import argparse

from common import OURS, machine, measure, prefect_server, table, verdict
from datasets import official_annotations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=14_600_000)
    parser.add_argument("--images", type=int, default=1_740_000)
    parser.add_argument("--dask", action="store_true", help="validate and partition on 1 and 2 Dask workers instead")
    args = parser.parse_args()
    source = official_annotations(args.rows, args.images)
    bbox = source / "train-annotations-bbox.csv"
    print(
        f"{machine()}\ninput: {bbox.stat().st_size / 1e9:.2f} GB bbox CSV, {args.rows} rows; "
        f"{args.images} images ({source})"
    )
    if args.dask:
        with prefect_server() as env:
            runs = {
                (step, n): measure(
                    f"{step} on {n} Dask worker(s)", [*OURS, step, str(source), "--workers", str(n)], env
                )
                for step in ("validate", "partition")
                for n in (1, 2)
            }
        print(table(list(runs.values())))
        for step in ("validate", "partition"):
            one, two = runs[step, 1], runs[step, 2]
            print(verdict(f"{step}: efficiency from 1 to 2 workers", one.seconds / (2 * two.seconds), 0.8))
        return
    baseline = measure("bare pyarrow.csv.read_csv of the bbox CSV", [*OURS, "read-csv", str(bbox)])
    with prefect_server() as env:
        validate = measure("openimages-etl validate (flow)", [*OURS, "validate", str(source)], env)
    partition = measure("partition the bbox CSV by subset", [*OURS, "partition", str(source)])
    print(table([baseline, validate, partition]))
    for run in (validate, partition):
        print(verdict(f"{run.label}: time / bare read", run.seconds / baseline.seconds, 2, higher_is_better=False))
        print(verdict(f"{run.label}: peak RSS GB", run.peak_mb / 1024, 2, higher_is_better=False))


if __name__ == "__main__":
    main()
