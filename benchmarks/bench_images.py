"""Target 3: resizing to 300k pixels, ours (`fast`, `tfds`) against TFDS's method
(full decode, cv2 INTER_LINEAR, JPEG q72).

Sources are photo-like JPEGs (q90) of 0.79 MP (1024x768), 2 MP (1632x1224) and 8 MP (3264x2448). Every method
converts the same bytes held in memory, in threads (one image per thread), and writes nothing while timed;
TFDS's method runs with Datumaro's python (its OpenCV), ours here. The runs are interleaved and repeated, and
the fastest of each kept (the machine is shared). Beside each ratio of seconds, the ratio of CPU seconds (user +
system of all threads), which other jobs on the machine disturb much less.
Goals: `fast` against TFDS >= 1.0x at 0.79 MP, >= 1.5x at 2 MP, >= 1.7x at 8 MP, on 1 and 2 threads; the PSNR
of `fast` against a Lanczos resize of the full decode >= TFDS's; `tfds` gives TFDS's pixels (PSNR = inf).
Then where the time goes (`child.py image-steps`: CPU time of one worker thread, and fast against tfds, which
has TFDS's pixels, interleaved in one process: the figure load disturbs least), and with --export, the export end to
end (`--image-size 300k`) of a few hundred images of each size: its image stage against TFDS's method on 2 threads,
which then reads each file inside its timed work too.

    python benchmarks/bench_images.py [--repeat 3] [--export [--export-scale K] [--export-only]]

The export's image stage shares the two cores with the rest of the export (CSV validation and partition beside it,
Prefect's bookkeeping, shard writes): a fixed ~0.3 s that weighs less as the set grows (`--export-scale 4`).
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
from common import (
    DATUMARO_PYTHON,
    HERE,
    OURS,
    Run,
    datumaro_available,
    machine,
    measure,
    prefect_server,
    table,
    verdict,
)
from datasets import photo_dataset, photos
from PIL import Image

TARGET = 300_000
# name: (images, width, height, distinct pictures among them), the speed goal against TFDS, images exported
SOURCES = {
    "0.79 MP": (200, 1024, 768, 20, 1.0, 1200),
    "2 MP": (100, 1632, 1224, 12, 1.5, 600),
    "8 MP": (96, 3264, 2448, 8, 1.7, 250),  # 48 were too few to time 2 threads: 24 images each, ~0.5 s
}


def fastest(runs: dict[str, Run], label: str, command: list[str], env: dict[str, str] | None = None) -> None:
    """Run `command` once more; keep the fastest run under `label`."""
    run = measure(label, command, env)
    if label not in runs or run.seconds < runs[label].seconds:
        runs[label] = run


def tfds_command(source: Path, out: Path, threads: int, *mode: str) -> list[str]:
    return [str(DATUMARO_PYTHON), str(HERE / "tfds_resize.py"), str(source), str(out), str(TARGET), str(threads), *mode]


def ours_command(method: str, source: Path, out: Path, threads: int) -> list[str]:
    return [
        *OURS,
        "images",
        str(source),
        str(out),
        "--method",
        method,
        "--threads",
        str(threads),
        "--target",
        str(TARGET),
    ]


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * math.log10(255**2 / max(float(np.mean((a - b) ** 2)), 1e-12))


def quality(source: Path, outputs: dict[str, Path], distinct: int) -> dict[str, float]:
    """Mean PSNR (dB) of each method's outputs against a Lanczos resize of the full decode, over the distinct pictures;
    `TFDS, aligned` against a Lanczos resize on TFDS's own pixel grid (both sides scaled by sqrt(target/pixels))."""
    values: dict[str, list[float]] = {}
    for path in sorted(source.glob("*.jpg"))[:distinct]:
        with Image.open(path) as image:
            full = image.convert("RGB")
        tfds = pixels(outputs["TFDS"] / path.name)
        height, width = tfds.shape[:2]
        factor = math.sqrt(TARGET / (full.width * full.height))
        references = {
            "": full.resize((width, height), Image.Resampling.LANCZOS),
            "aligned": full.resize(
                (width, height), Image.Resampling.LANCZOS, box=(0, 0, width / factor, height / factor)
            ),
        }
        values.setdefault("TFDS", []).append(psnr(tfds, np.asarray(references[""], np.float64)))
        values.setdefault("TFDS, aligned", []).append(psnr(tfds, np.asarray(references["aligned"], np.float64)))
        values.setdefault("fast", []).append(
            psnr(pixels(outputs["fast"] / path.name), np.asarray(references[""], np.float64))
        )
    return {name: float(np.mean(v)) for name, v in values.items()}


def identical(ours: Path, theirs: Path) -> tuple[int, int, int]:
    """(images, with identical pixels, with identical bytes) of our tfds outputs against TFDS's."""
    names = sorted(p.name for p in theirs.glob("*.jpg"))
    same_pixels = sum(np.array_equal(pixels(ours / n), pixels(theirs / n)) for n in names)
    same_bytes = sum((ours / n).read_bytes() == (theirs / n).read_bytes() for n in names)
    return len(names), same_pixels, same_bytes


def speed(args, out: Path) -> None:
    sources = {
        name: photos(count, width, height, distinct=distinct)
        for name, (count, width, height, distinct, _, _) in SOURCES.items()
    }
    runs: dict[str, Run] = {}
    for _ in range(args.repeat):
        for name, source in sources.items():
            for threads in (1, 2):
                fastest(
                    runs,
                    f"TFDS method, {name}, {threads} thread(s)",
                    tfds_command(source, out / f"TFDS-{name}", threads),
                )
                fastest(
                    runs,
                    f"ours fast, {name}, {threads} thread(s)",
                    ours_command("fast", source, out / f"fast-{name}", threads),
                )
            fastest(runs, f"ours tfds, {name}, 1 thread(s)", ours_command("tfds", source, out / f"tfds-{name}", 1))
            fastest(runs, f"ours step by step, {name}", [*OURS, "image-steps", str(source), "--target", str(TARGET)])
    print(table(list(runs.values())))
    for name, (_, _, _, distinct, goal, _) in SOURCES.items():
        for threads in (1, 2):
            theirs, ours = (
                runs[f"TFDS method, {name}, {threads} thread(s)"],
                runs[f"ours fast, {name}, {threads} thread(s)"],
            )
            print(
                verdict(
                    f"{name}: TFDS s / fast s ({threads} thread{'s' * (threads > 1)})",
                    theirs.seconds / ours.seconds,
                    goal,
                )
                + f"; CPU s: {theirs.output['cpu'] / ours.output['cpu']:.2f}"
            )
        scaling = runs[f"ours fast, {name}, 1 thread(s)"].seconds / runs[f"ours fast, {name}, 2 thread(s)"].seconds
        tfds_scaling = (
            runs[f"TFDS method, {name}, 1 thread(s)"].seconds / runs[f"TFDS method, {name}, 2 thread(s)"].seconds
        )
        tfds_mode = runs[f"TFDS method, {name}, 1 thread(s)"].seconds / runs[f"ours tfds, {name}, 1 thread(s)"].seconds
        print(
            f"{name}: thread scaling 1 -> 2: fast {scaling:.2f}, TFDS {tfds_scaling:.2f}; "
            f"tfds mode {tfds_mode:.2f}x TFDS (1 thread)"
        )
        db = quality(sources[name], {"TFDS": out / f"TFDS-{name}", "fast": out / f"fast-{name}"}, distinct)
        print(
            f"{name}: PSNR against Lanczos: fast {db['fast']:.2f} dB, TFDS {db['TFDS']:.2f} dB "
            f"(TFDS against Lanczos on its own pixel grid: {db['TFDS, aligned']:.2f} dB)"
        )
        print(verdict(f"{name}: PSNR fast - PSNR TFDS (dB)", db["fast"] - db["TFDS"], 0))
        count, same_pixels, same_bytes = identical(out / f"tfds-{name}", out / f"TFDS-{name}")
        print(
            verdict(
                f"{name}: tfds mode, images with TFDS's pixels (of {count}; identical bytes: {same_bytes})",
                same_pixels,
                count,
            )
        )
    print(breakdown(runs))


def breakdown(runs: dict[str, Run]) -> str:
    """CPU ms per image of one worker thread: the full decodes (TFDS's is OpenCV's), the steps of fast, and fast
    against tfds (TFDS's method with TFDS's pixels) interleaved in one process, the comparison load disturbs least."""
    steps = ["OpenCV decode", "Pillow decode", "scaled decode", "resize", "encode", "fast", "tfds"]
    lines = [
        "where the time goes, CPU ms per image, one worker thread, interleaved:",
        f"  {'source':8s} " + " ".join(f"{s:>13s}" for s in steps) + f" {'tfds / fast':>12s}",
    ]
    for name in SOURCES:
        ms = runs[f"ours step by step, {name}"].output["ms"]
        lines.append(f"  {name:8s} " + " ".join(f"{ms[s]:13.1f}" for s in steps) + f" {ms['tfds'] / ms['fast']:12.2f}")
    return "\n".join(lines)


def export(args, out: Path) -> None:
    """Our export's image stage (first image task's start to the last one's end: reading, resizing, writing shards)
    against TFDS's method on 2 threads over the same files, each read inside its timed work as the export reads it;
    then both kernels on the same files in memory, which shows what the stage adds."""
    counts = {name: count * args.export_scale for name, (*_, count) in SOURCES.items()}
    datasets = {name: photo_dataset(counts[name], width, height) for name, (_, width, height, *_) in SOURCES.items()}
    runs: dict[str, Run] = {}
    with prefect_server() as env:
        for _ in range(args.repeat):
            for name, dataset in datasets.items():
                fastest(
                    runs,
                    f"export 300k fast, {name}",
                    [*OURS, "export", str(dataset), str(out / "export"), "--image-size", "300k"],
                    env,
                )
                images = dataset / "images" / "train"
                fastest(runs, f"TFDS method, {name}, 2 threads", tfds_command(images, out / "export-tfds", 2, "read"))
                # the kernels on this very set, bytes in memory: what the export's stage adds to ours
                fastest(runs, f"kernel TFDS, {name}, 2 threads", tfds_command(images, out / "kernel-tfds", 2))
                fastest(runs, f"kernel fast, {name}, 2 threads", ours_command("fast", images, out / "kernel-fast", 2))
    print(table(list(runs.values())))
    for name, (*_, goal, _) in SOURCES.items():
        count = counts[name]
        ours, theirs = runs[f"export 300k fast, {name}"], runs[f"TFDS method, {name}, 2 threads"]
        images = ours.output["stages"]["images"]
        print(
            f"{name}, {count} images: export {ours.seconds:.1f} s, image stage {images:.2f} s "
            f"in {ours.output['tasks']['images']} tasks; "
            f"TFDS's method {theirs.seconds:.2f} s"
        )
        print(verdict(f"{name}: end to end, TFDS s / our image stage s (2 threads)", theirs.seconds / images, goal))
        kernel, kernel_tfds = runs[f"kernel fast, {name}, 2 threads"], runs[f"kernel TFDS, {name}, 2 threads"]
        print(
            f"{name}: the kernels on this set, 2 threads: TFDS s / fast s {kernel_tfds.seconds / kernel.seconds:.2f}; "
            f"the export's image stage takes {images / kernel.seconds - 1:+.0%} over our kernel"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--export", action="store_true", help="also export a few hundred images of each size")
    parser.add_argument("--export-scale", type=int, default=1, help="export K times as many images")
    parser.add_argument("--export-only", action="store_true", help="the export alone, not the kernels' speed")
    args = parser.parse_args()
    if not datumaro_available():  # its venv has OpenCV: the TFDS side runs there, never in ours
        raise SystemExit(2)
    print(
        f"{machine()}\ninput: "
        + ", ".join(f"{c} JPEGs of {n} ({w}x{h}, {d} distinct)" for n, (c, w, h, d, _, _) in SOURCES.items())
        + f"; target {TARGET} pixels"
    )
    out = Path(tempfile.mkdtemp(prefix="bench-images-"))
    try:
        if not args.export_only:
            speed(args, out)
        if args.export or args.export_only:
            export(args, out)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(machine())


if __name__ == "__main__":
    main()
