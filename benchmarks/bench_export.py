"""Target 1: an annotation-heavy export (many small images, ~25 boxes each) against Datumaro 1.13.

Both read the same CVAT-layout folder. Datumaro: `Dataset.import_from(..., "open_images")` then
`export(..., "open_images", save_media=True)`. Ours: the export flow against a running Prefect server.
Goal: >= 20x Datumaro's throughput with <= 1/5 of its peak RSS.

    python benchmarks/bench_export.py [--images 20000 [100000 ...]] [--boxes 25]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile

from common import DATUMARO_PYTHON, HERE, OURS, datumaro_available, machine, measure, prefect_server, table, verdict
from datasets import annotation_heavy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, nargs="+", default=[20_000], help="one run per size, e.g. 20000 100000")
    parser.add_argument("--boxes", type=int, default=25, help="boxes per image")
    args = parser.parse_args()
    if not datumaro_available():
        raise SystemExit(2)
    print(machine())
    for images in args.images:
        compare(images, args.boxes)


def compare(images: int, boxes: int) -> None:
    source = annotation_heavy(images, boxes)
    print(f"\ninput: {images} images, {images * boxes} boxes ({source})")
    out = tempfile.mkdtemp(prefix="bench-export-")
    try:
        with prefect_server() as env:
            ours = measure("openimages-etl export (flow)", [*OURS, "export", str(source), f"{out}/ours"], env)
        theirs = measure(
            "datumaro import + export open_images",
            [str(DATUMARO_PYTHON), str(HERE / "datumaro_export.py"), str(source), f"{out}/datumaro"],
        )
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(table([ours, theirs]))
    print(
        "our stages (s, first start to last end of each kind of task):",
        ", ".join(f"{kind} {seconds:.2f}" for kind, seconds in ours.output["stages"].items()),
    )
    print(verdict("throughput ratio (Datumaro s / ours s)", theirs.seconds / ours.seconds, 20))
    print(verdict("peak RSS ratio (ours / Datumaro)", ours.peak_mb / theirs.peak_mb, 0.2, higher_is_better=False))


if __name__ == "__main__":
    main()
