"""How long the run report's stage takes: pictures from the exported zip, the HTML page, the files written.

    python benchmarks/report_stage.py [--images 10000]

Builds an exported zip in `--dir` (Datumaro layout: JPEGs of the demo's sizes, 1-8 boxes per image over
600 classes, positive and negative image labels, a mask for every fifth image), then times each part of
the report stage as `write_report` runs it, and the whole, in one process. A zip already in `--dir` built for
the same `--images` is reused. matplotlib's import (~0.6 s, paid once per process by the first run that draws)
is timed apart, so that the stage's figure compares across versions that import it at different moments.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from openimages_etl.format.failures import FailureSummary
from openimages_etl.format.sample import SIZES, _mask, _picture
from openimages_etl.report.inline import data_urls
from openimages_etl.report.model import Picture, Pictures, RunReport, build_report
from openimages_etl.report.pages import to_html
from openimages_etl.report.pictures import dataset_visuals, open_zip, write_visuals

SUBSETS = {"train": 0.8, "validation": 0.15, "test": 0.05}
BOX_HEADER = (
    "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside"
)


def build_export(path: Path, images: int, seed: int = 0) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    pictures = []
    for height, width in SIZES:
        out = io.BytesIO()
        _picture(rng, height, width).save(out, "JPEG", quality=90)
        pictures.append((height, width, out.getvalue()))
    classes = [(f"/m/{n:05x}", f"Class {n}") for n in range(600)]
    popularity = 1 / np.arange(1, 601) ** 0.8  # a long tail, like Open Images
    popularity /= popularity.sum()
    counts = {"images": 0, "boxes": 0, "masks": 0}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("annotations/class-descriptions.csv", "".join(f"{mid},{name}\r\n" for mid, name in classes))
        meta = ["# image_id height width"]
        for subset, share in SUBSETS.items():
            ids = [f"{v:016x}" for v in rng.integers(0, 2**63, int(images * share))]
            boxes, labels, masks = (
                [BOX_HEADER],
                ["ImageID,Source,LabelName,Confidence"],
                ["MaskPath,ImageID,LabelName,BoxID,BoxXMin,BoxXMax,BoxYMin,BoxYMax,PredictedIoU,Clicks"],
            )
            for number, image_id in enumerate(ids):
                height, width, jpeg = pictures[number % len(pictures)]
                archive.writestr(f"images/{subset}/{image_id}.jpg", jpeg, compress_type=zipfile.ZIP_STORED)
                meta.append(f"{image_id} {height} {width}")
                for label in rng.choice(600, rng.integers(1, 9), p=popularity):
                    x0, y0 = rng.uniform(0, 0.6, 2)
                    x1, y1 = x0 + rng.uniform(0.05, 0.4), y0 + rng.uniform(0.05, 0.4)
                    boxes.append(
                        f"{image_id},xclick,{classes[label][0]},1,{x0:.4f},{x1:.4f},{y0:.4f},{y1:.4f},0,0,0,0,0"
                    )
                labels += [f"{image_id},verification,{classes[rng.integers(600)][0]},{c}" for c in (1, 1, 0)]
                if number % 5 == 0:
                    name = f"{image_id}_m{number:05x}_00000000.png"
                    masks.append(f"{name},{image_id},{classes[0][0]},00000000,{x0:.4f},{x1:.4f},{y0:.4f},{y1:.4f},,")
                    archive.writestr(
                        f"masks/{subset}/{name}",
                        _mask(height, width, (x0, y0, x1, y1)),
                        compress_type=zipfile.ZIP_STORED,
                    )
            archive.writestr(
                f"annotations/{subset}-images-with-rotation.csv",
                "ImageID,Subset,Rotation\r\n"
                + "".join(f"{i},{subset},{'90.0' if n % 7 == 3 else '0.0'}\r\n" for n, i in enumerate(ids)),
            )
            for kind, rows in (
                ("annotations-bbox", boxes),
                ("annotations-human-imagelabels", labels),
                ("annotations-object-segmentation", masks),
            ):
                archive.writestr(f"annotations/{subset}-{kind}.csv", "\r\n".join(rows) + "\r\n")
            counts["images"] += len(ids)
            counts["boxes"] += len(boxes) - 1
            counts["masks"] += len(masks) - 1
        archive.writestr("annotations/images.meta", "\n".join(meta) + "\n")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument(
        "--dir", default=None, help="where the zip and the report files go (default: a temporary folder)"
    )
    args = parser.parse_args()
    base = Path(args.dir or tempfile.mkdtemp(prefix="report-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    zip_path, counts_path = base / f"bench-{args.images}.zip", base / f"bench-{args.images}.json"
    if not counts_path.exists():
        counts_path.write_text(json.dumps(build_export(zip_path, args.images)))
    counts = json.loads(counts_path.read_text())
    print(
        f"export: {counts['images']:,} images, {counts['boxes']:,} boxes, {counts['masks']:,} masks, "
        f"{zip_path.stat().st_size / 1e6:.0f} MB (ready in {time.perf_counter() - started:.1f} s)"
    )
    started = time.perf_counter()
    import openimages_etl.report.charts  # noqa: F401  (see the docstring)

    print(f"matplotlib import: {time.perf_counter() - started:.2f} s")

    cpu = time.process_time()
    marks = [("start", time.perf_counter())]
    layout, keys = open_zip(str(zip_path), base / "work")
    marks.append(("open the zip, list it, key tables", time.perf_counter()))
    stats, visuals = dataset_visuals(layout, keys)
    marks.append(("stats pass + contact sheets + charts", time.perf_counter()))
    files = write_visuals(visuals, base / "bench.report")
    pngs = {picture.file: visual.png for picture, visual in zip(files, visuals)}
    (base / "bench.report.html").write_text(to_html(_report(files), pngs), encoding="utf-8")
    marks.append(("PNGs and HTML written", time.perf_counter()))
    inlined = data_urls({v.file: v.png for v in visuals})
    marks.append(("pictures downscaled for the UI artifact", time.perf_counter()))
    for (_, before), (what, after) in zip(marks, marks[1:]):
        print(f"  {what:<40} {after - before:6.2f} s")
    print(
        f"report stage: {marks[-1][1] - marks[0][1]:.2f} s ({time.process_time() - cpu:.2f} s CPU) "
        f"for {len(visuals)} pictures, "
        f"HTML {(base / 'bench.report.html').stat().st_size / 1e6:.1f} MB, UI artifact's pictures "
        f"{sum(map(len, inlined.values())) / 1e3:.0f} KB ({len(inlined)} shown)  ({base})"
    )


def _report(pictures: list[Picture]) -> RunReport:
    now = datetime.now(timezone.utc)
    report = build_report(
        status="published",
        source="bench",
        output="bench.zip",
        image_size="original",
        started=now,
        finished=now,
        subsets={},
        files=[],
        failures=FailureSummary(),
    )
    return report.model_copy(update={"pictures": Pictures(html="bench.report.html", files=pictures)})


if __name__ == "__main__":
    main()
