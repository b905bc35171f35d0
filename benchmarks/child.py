"""Our side of the benchmarks, one run per process: prints {"seconds": ...} for the work, imports excluded.

child.py export SOURCE DEST [--image-size 300k] [--dask ADDRESS|local] [--workers N]
child.py validate SOURCE
child.py partition SOURCE [--select CLASS --per-class N]
                                   (index + validate (+ select) untimed, then partition_table timed)
child.py partition SOURCE --workers N
                                   (the export flow's stages on a LocalCluster of N one-thread workers: index +
                                   validate untimed, then the partition stage timed; on 2 a large CSV goes as ranges)
child.py images SOURCE_DIR OUT_DIR [--method fast|tfds] [--threads N]
child.py image-steps SOURCE_DIR    (ms per image of full decodes and of each step of ours, one thread)
child.py select SOURCE CLASS [--per-class N]   (index untimed, then the selection timed)
child.py read-csv PATH             (the baseline of target 2: a bare pyarrow.csv.read_csv)
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path


def export(args) -> dict:
    from openimages_etl.flows import export_open_images
    from openimages_etl.options import ExportOptions

    flow = export_open_images
    if args.dask:
        from openimages_etl.flows.scaleout import on_dask

        flow = on_dask(export_open_images, None if args.dask == "local" else args.dask, args.workers)
    started = time.perf_counter()
    options = ExportOptions(
        dest=args.dest, name="bench", image_size=args.image_size, resize_method=args.resize_method, reuse=False
    )
    state = flow(source=args.source, options=options, return_state=True)
    seconds = time.perf_counter() - started
    report = state.result()
    time.sleep(3)  # task runs reach the API as events: give the last ones a moment
    stages, tasks = stage_spans(state.state_details.flow_run_id)
    return {"seconds": seconds, "subsets": report["subsets"], "stages": stages, "tasks": tasks}


def stage_spans(flow_run_id) -> tuple[dict[str, float], dict[str, int]]:
    """Per kind of task run (`images-...`, `validate-...`): seconds from the first start to the last end,
    and how many."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import TaskRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
            sort=TaskRunSort.EXPECTED_START_TIME_ASC,
            limit=200,
        )
    spans: dict[str, list] = {}
    for run in runs:
        if run.start_time and run.end_time:
            kind = run.name.split("-")[0]
            first, last, count = spans.get(kind, (run.start_time, run.end_time, 0))
            spans[kind] = (min(first, run.start_time), max(last, run.end_time), count + 1)
    return (
        {kind: (last - first).total_seconds() for kind, (first, last, _) in spans.items()},
        {kind: count for kind, (_, _, count) in spans.items()},
    )


def validate(args) -> dict:
    from openimages_etl.flows import validate_open_images

    flow = validate_open_images
    if args.workers:  # on a LocalCluster of that many one-thread workers: large CSVs go as byte ranges
        from openimages_etl.flows.scaleout import on_dask

        flow = on_dask(validate_open_images, None, args.workers)
    started = time.perf_counter()
    summary = flow(source=args.source)
    return {"seconds": time.perf_counter() - started, "rows": summary["rows"]}


def partition(args) -> dict:
    if args.workers:
        return partition_stage(args)
    from openimages_etl.format.layout import discover
    from openimages_etl.format.selection import SelectionSpec, select
    from openimages_etl.format.validation import build_keys, validate_table
    from openimages_etl.output.partition import PartitionRequest, output_columns, partition_table
    from openimages_etl.storage.locations import stage_source

    with tempfile.TemporaryDirectory(prefix="bench-partition-") as tmp:
        work = Path(tmp)
        layout = discover(stage_source(args.source, {}, work), work / "index")
        keys = build_keys(layout, work)
        checks = [validate_table(layout, table, keys, work) for table in layout.tables]
        boxes = next(c for c in checks if c.table.kind == "boxes")
        selection = (
            select(
                layout,
                keys,
                SelectionSpec(classes=(args.select,), per_class=args.per_class),
                sorted(keys.images_per_subset),
                work / "sel",
            )
            if args.select
            else None
        )
        started = time.perf_counter()
        columns = output_columns(layout.of_kind("boxes"))
        result = partition_table(PartitionRequest(boxes, keys, None, columns, work / "out", selection))
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "published": result.published}


def partition_stage(args) -> dict:
    """The partition stage as the export flow runs it (flows.stages.partition_tables), on Dask."""
    from prefect import flow

    from openimages_etl.flows.export import index_source, validate_tables
    from openimages_etl.flows.scaleout import on_dask
    from openimages_etl.flows.stages import ExportJob, output_headers, partition_tables
    from openimages_etl.format.csvcopy import csv_copies
    from openimages_etl.options import ExportOptions
    from openimages_etl.orchestration.workfolder import work_folder

    @flow(name="bench-partition-stage")
    def stage(source: str, dest: str) -> dict:
        job = ExportJob.read(source, ExportOptions(dest=dest, name="bench"), {})
        with work_folder() as work, csv_copies():
            layout, keys = index_source(source, {}, work, job.limits)
            checks = validate_tables(layout, keys, work).result()
            started = time.perf_counter()
            chosen = sorted(keys.images_per_subset)
            results = partition_tables(checks, keys, job, chosen, output_headers(layout), work, None).result()
            seconds = time.perf_counter() - started
        parts = {r.file: len({p.start for p in r.parts}) for r in results}
        return {"seconds": seconds, "published": {r.file: r.published for r in results}, "ranges": parts}

    with tempfile.TemporaryDirectory(prefix="bench-partition-") as dest:
        return on_dask(stage, None, args.workers)(source=args.source, dest=dest)


def select(args) -> dict:
    from openimages_etl.format.layout import discover
    from openimages_etl.format.selection import SelectionSpec, select
    from openimages_etl.format.validation import build_keys
    from openimages_etl.storage.locations import stage_source

    with tempfile.TemporaryDirectory(prefix="bench-select-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        layout = discover(stage_source(args.source, {}, work), work / "index")
        keys = build_keys(layout, work)
        indexed = time.perf_counter()
        chosen = select(
            layout,
            keys,
            SelectionSpec(classes=(args.label,), per_class=args.per_class),
            sorted(keys.images_per_subset),
            work / "sel",
        )
        seconds = time.perf_counter() - indexed
    return {
        "seconds": seconds,
        "index_seconds": indexed - started,
        "classes": len(chosen.mids),
        "images": chosen.keys.images_per_subset,
    }


def images(args) -> dict:
    """Convert every JPEG of a folder in `threads` threads, bytes in memory (I/O excluded, as on the TFDS side);
    the seconds and the CPU seconds (user + system, all threads) of the work."""
    from concurrent.futures import ThreadPoolExecutor

    from openimages_etl.media.images import convert_image
    from openimages_etl.orchestration.heap import bound_the_heap

    bound_the_heap()  # as the export flow does
    files = sorted(Path(args.source).glob("*.jpg"))
    datas = [f.read_bytes() for f in files]
    convert_image(datas[0], args.target, method=args.method)  # OpenCV is imported on first use
    started, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(args.threads) as pool:
        results = list(pool.map(lambda data: convert_image(data, args.target, method=args.method)[0], datas))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path, data in zip(files, results):
        (out / path.name).write_bytes(data)
    return {"seconds": seconds, "cpu": cpu, "images": len(files)}


def image_steps(args) -> dict:
    """Where the time goes, in CPU ms per image of one worker thread (the machine's other jobs barely change it;
    on the main thread OpenCV's decode pays ~3 ms of page faults that a worker thread does not): full decodes by
    OpenCV (TFDS's first step) and by Pillow, the steps of `fast` (scaled decode to YCbCr planes, resize, encode),
    each fed by the one before, and whole conversions by `fast` and by `tfds` (TFDS's method, same pixels),
    interleaved."""
    from concurrent.futures import ThreadPoolExecutor

    import cv2
    import numpy as np
    from PIL import Image

    from openimages_etl.media.images import convert_image
    from openimages_etl.media.resize import decode_planes, encode_planes, plane_sizes, resize_to, tfds_size

    cv2.setNumThreads(1)
    spent = dict.fromkeys(["OpenCV decode", "Pillow decode", "scaled decode", "resize", "encode", "fast", "tfds"], 0.0)

    def timed(step: str, work):
        started = time.thread_time()
        result = work()
        spent[step] += time.thread_time() - started
        return result

    def run() -> None:
        for data in datas:
            timed("OpenCV decode", lambda: cv2.imdecode(np.frombuffer(data, np.uint8), flags=3))
            timed("Pillow decode", lambda: Image.open(io.BytesIO(data)).load())
            width, height = Image.open(io.BytesIO(data)).size
            size = tfds_size(width, height, args.target)
            planes = timed("scaled decode", lambda: decode_planes(data, width, height, size))
            small = timed("resize", lambda: [resize_to(p, s) for p, s in zip(planes, plane_sizes(size))])
            timed("encode", lambda: encode_planes(small))
            for method in ("fast", "tfds"):
                timed(method, lambda: convert_image(data, args.target, method=method))

    datas = [f.read_bytes() for f in sorted(Path(args.source).glob("*.jpg"))]
    convert_image(datas[0], args.target)  # OpenCV is imported on first use
    with ThreadPoolExecutor(1) as pool:
        pool.submit(run).result()
    return {
        "seconds": sum(spent.values()),
        "images": len(datas),
        "ms": {k: v / len(datas) * 1000 for k, v in spent.items()},
    }


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
    run.add_argument("--resize-method", default="fast")
    run.add_argument("--dask", default=None)
    run.add_argument("--workers", type=int, default=None)
    run.set_defaults(run=export)
    for name, function in (("validate", validate), ("partition", partition)):
        sub = commands.add_parser(name)
        sub.add_argument("source")
        sub.set_defaults(run=function)
    for name in ("validate", "partition"):
        commands.choices[name].add_argument("--workers", type=int, default=None)
    sub.add_argument("--select", default=None, metavar="CLASS")
    sub.add_argument("--per-class", type=int, default=2000)
    sub = commands.add_parser("select")
    sub.add_argument("source")
    sub.add_argument("label")
    sub.add_argument("--per-class", type=int, default=2000)
    sub.set_defaults(run=select)
    sub = commands.add_parser("images")
    sub.add_argument("source")
    sub.add_argument("out")
    sub.add_argument("--method", choices=["fast", "tfds"], default="fast")
    sub.add_argument("--target", type=int, default=300_000)
    sub.add_argument("--threads", type=int, default=1)
    sub.set_defaults(run=images)
    sub = commands.add_parser("image-steps")
    sub.add_argument("source")
    sub.add_argument("--target", type=int, default=300_000)
    sub.set_defaults(run=image_steps)
    sub = commands.add_parser("read-csv")
    sub.add_argument("path")
    sub.set_defaults(run=read_csv)
    args = parser.parse_args()
    print(json.dumps(args.run(args)))


if __name__ == "__main__":
    main()
