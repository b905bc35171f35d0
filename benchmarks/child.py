"""Our side of the benchmarks, one run per process: prints {"seconds": ...} for the work, imports excluded.

    child.py export SOURCE DEST [--image-size 300k] [--dask ADDRESS|local] [--workers N]
    child.py validate SOURCE
    child.py partition SOURCE          (index + validate untimed, then partition_table timed)
    child.py read-csv PATH             (the baseline of target 2: a bare pyarrow.csv.read_csv)
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def export(args) -> dict:
    from openimages_etl.flows import export_open_images

    flow = export_open_images
    if args.dask:
        from openimages_etl.scaleout import task_runner

        flow = export_open_images.with_options(task_runner=task_runner(None if args.dask == "local" else args.dask, args.workers))
    started = time.perf_counter()
    report = flow(source=args.source, dest=args.dest, name="bench", image_size=args.image_size)
    return {"seconds": time.perf_counter() - started, "subsets": report["subsets"]}


def validate(args) -> dict:
    from openimages_etl.flows import validate_open_images

    started = time.perf_counter()
    summary = validate_open_images(source=args.source)
    return {"seconds": time.perf_counter() - started, "rows": summary["rows"]}


def partition(args) -> dict:
    from openimages_etl.layout import discover
    from openimages_etl.partition import output_columns, partition_table
    from openimages_etl.storage import stage_source
    from openimages_etl.validation import build_keys, validate_table

    with tempfile.TemporaryDirectory(prefix="bench-partition-") as tmp:
        work = Path(tmp)
        layout = discover(stage_source(args.source, {}, work), work / "index")
        keys = build_keys(layout, work)
        checks = [validate_table(layout, table, keys, work) for table in layout.tables]
        boxes = next(c for c in checks if c.table.kind == "boxes")
        started = time.perf_counter()
        result = partition_table(boxes, keys, None, output_columns(layout.of_kind("boxes")), work / "out")
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "published": result.published}


def read_csv(args) -> dict:
    import pyarrow.csv

    started = time.perf_counter()
    rows = pyarrow.csv.read_csv(args.path).num_rows
    return {"seconds": time.perf_counter() - started, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(required=True)
    run = commands.add_parser("export")
    run.add_argument("source")
    run.add_argument("dest")
    run.add_argument("--image-size", default="original")
    run.add_argument("--dask", default=None)
    run.add_argument("--workers", type=int, default=None)
    run.set_defaults(run=export)
    for name, function in (("validate", validate), ("partition", partition)):
        sub = commands.add_parser(name)
        sub.add_argument("source")
        sub.set_defaults(run=function)
    sub = commands.add_parser("read-csv")
    sub.add_argument("path")
    sub.set_defaults(run=read_csv)
    args = parser.parse_args()
    print(json.dumps(args.run(args)))


if __name__ == "__main__":
    main()
