"""Target 3: resizing to 300k pixels against the TFDS method (full decode, cv2 INTER_LINEAR, JPEG q72).

Sources are photo-like JPEGs (q90): 8 MP (3264x2448) and <= 1 MP (1024x768). Every method converts the
same bytes held in memory, in threads (one image per thread), and writes nothing while timed. Each run
is repeated and the fastest kept (the machine is shared). Methods of ours: `shipped` (what the export
does: Pillow draft() + antialiased bilinear), and two explored for faithfulness to TFDS: `draft-linear`
(draft() + cv2's INTER_LINEAR done by a Pillow affine transform) and `full-linear` (full decode + the same).
Goals: shipped >= 2x TFDS on 8 MP; <= 1.3x a bare decode on <= 1 MP; >= 40 dB PSNR against TFDS's output.
Then where the time goes: each step of ours timed alone (`child.py image-steps`, one thread) and the ceilings
those steps put on the two speed ratios.

    python benchmarks/bench_images.py [--repeat 3]
"""
from __future__ import annotations

import argparse
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from common import DATUMARO_PYTHON, HERE, OURS, Run, datumaro_available, machine, measure, table, verdict
from datasets import photos

TARGET = 300_000


def fastest(label: str, command: list[str], repeat: int) -> Run:
    runs = [measure(label, command) for _ in range(repeat)]
    return min(runs, key=lambda run: run.seconds)


def psnr(ours: Path, reference: Path) -> float:
    """Mean PSNR (dB) of our outputs against the reference's, image by image."""
    values = []
    for path in sorted(reference.glob("*.jpg")):
        a = np.asarray(Image.open(path).convert("RGB"), np.float64)
        b = np.asarray(Image.open(ours / path.name).convert("RGB"), np.float64)
        if a.shape != b.shape:
            raise SystemExit(f"{path.name}: sizes differ {a.shape} vs {b.shape}")
        values.append(10 * math.log10(255**2 / max(np.mean((a - b) ** 2), 1e-12)))
    return float(np.mean(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not datumaro_available():  # its venv has OpenCV: the TFDS side runs there, never in ours
        raise SystemExit(2)
    large, small = photos(48, 3264, 2448, distinct=8), photos(200, 1024, 768, distinct=20)
    print(f"{machine()}\ninput: 48 JPEGs of 8 MP ({large}), 200 of 0.79 MP ({small}); target {TARGET} pixels")
    out = Path(tempfile.mkdtemp(prefix="bench-images-"))
    try:
        def tfds(source: Path, threads: int) -> Run:
            return fastest(f"TFDS method (cv2), {source.name[7:]}, {threads} thread(s)",
                           [str(DATUMARO_PYTHON), str(HERE / "tfds_resize.py"), str(source), str(out / f"tfds-{source.name}"),
                            str(TARGET), str(threads)], args.repeat)

        def ours(method: str, source: Path, threads: int) -> Run:
            return fastest(f"ours {method}, {source.name[7:]}, {threads} thread(s)",
                           [*OURS, "images", str(source), str(out / f"{method}-{source.name}"), "--method", method,
                            "--threads", str(threads), "--target", str(TARGET)], args.repeat)

        def steps(source: Path) -> Run:
            return fastest(f"ours step by step, {source.name[7:]}", [*OURS, "image-steps", str(source), "--target", str(TARGET)],
                           args.repeat)

        runs = {
            "tfds1": tfds(large, 1), "tfds2": tfds(large, 2),
            "shipped1": ours("shipped", large, 1), "shipped2": ours("shipped", large, 2),
            "draft1": ours("draft-linear", large, 1), "full1": ours("full-linear", large, 1),
            "small_decode": ours("decode", small, 1), "small_shipped": ours("shipped", small, 1),
            "small_tfds": tfds(small, 1), "steps_large": steps(large), "steps_small": steps(small),
        }
        quality = {m: psnr(out / f"{m}-{large.name}", out / f"tfds-{large.name}") for m in ("shipped", "draft-linear", "full-linear")}
        small_quality = psnr(out / f"shipped-{small.name}", out / f"tfds-{small.name}")
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(table(list(runs.values())))
    print(verdict("8 MP: TFDS s / shipped s (1 thread)", runs["tfds1"].seconds / runs["shipped1"].seconds, 2))
    print(verdict("8 MP: TFDS s / shipped s (2 threads)", runs["tfds2"].seconds / runs["shipped2"].seconds, 2))
    print(verdict("8 MP: shipped thread scaling 1 -> 2", runs["shipped1"].seconds / runs["shipped2"].seconds, 1.8))
    print(verdict("<= 1 MP: shipped s / bare decode s", runs["small_shipped"].seconds / runs["small_decode"].seconds, 1.3, False))
    for method, value in quality.items():
        print(verdict(f"8 MP: PSNR {method} vs TFDS (dB)", value, 40))
    print(verdict("<= 1 MP: PSNR shipped vs TFDS (dB)", small_quality, 40))
    print(f"faithful alternatives: TFDS s / draft-linear s = {runs['tfds1'].seconds / runs['draft1'].seconds:.2f}, "
          f"TFDS s / full-linear s = {runs['tfds1'].seconds / runs['full1'].seconds:.2f}")
    print(breakdown(runs))


def per_image(run: Run) -> float:
    return run.seconds / run.output["images"] * 1000


def breakdown(runs: dict[str, Run]) -> str:
    """Each step's ms per image and the ceilings they set: what limits the two speed ratios."""
    large, small = runs["steps_large"].output["ms"], runs["steps_small"].output["ms"]
    lines = ["where the time goes, ms per image, one thread:",
             f"  {'source':8s} {'full decode':>12s} {'draft decode':>13s} {'resize':>7s} {'encode':>7s} {'shipped':>8s} {'TFDS':>6s}"]
    for name, ms, shipped, tfds in (("8 MP", large, runs["shipped1"], runs["tfds1"]),
                                    ("0.79 MP", small, runs["small_shipped"], runs["small_tfds"])):
        lines.append(f"  {name:8s} {ms['full decode']:12.1f} {ms['draft decode']:13.1f} {ms['resize']:7.1f} {ms['encode']:7.1f} "
                     f"{per_image(shipped):8.1f} {per_image(tfds):6.1f}")
    tfds_large = per_image(runs["tfds1"])
    lines.append(f"ceiling on 8 MP, TFDS / ours if the resize and the encode cost nothing (TFDS / draft decode): "
                 f"{tfds_large / large['draft decode']:.2f}; if only the resize did: {tfds_large / (large['draft decode'] + large['encode']):.2f}")
    lines.append(f"ceiling on <= 1 MP, ours / bare decode if the resize cost nothing ((decode + encode) / decode): "
                 f"{(small['full decode'] + small['encode']) / small['full decode']:.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
