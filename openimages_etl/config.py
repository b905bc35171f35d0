"""Typed run options shared by the CLI, the flows and the deployments."""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum

from openimages_etl.errors import UsageError


class ImageSize(str, Enum):
    """How images are exported: as they are, or resized the TFDS way to a pixel budget."""

    original = "original"
    px300k = "300k"
    px200k = "200k"

    @property
    def target_pixels(self) -> int | None:
        return {"300k": 300_000, "200k": 200_000}.get(self.value)


class ResizeMethod(str, Enum):
    """How 300k/200k images are resized: fast (scaled JPEG decode, then OpenCV) or tfds (TFDS's exact pixels)."""

    fast = "fast"
    tfds = "tfds"


class OnInvalid(str, Enum):
    """What to do with rows that fail validation: publish nothing, or leave them out and publish."""

    fail = "fail"
    drop = "drop"


class BoxFlag(str, Enum):
    """A box flag that `drop_boxes` filters on: boxes with it at 1 are left out."""

    occluded = "occluded"
    truncated = "truncated"
    group_of = "group-of"
    depiction = "depiction"
    inside = "inside"


# Text per batch when streaming a CSV: large enough to vectorise well, small enough for bounded memory
# (about 800 k rows of the bbox CSV, 190 k of the image lists with their URLs).
CSV_BATCH_BYTES = 64 << 20
# Images per conversion task: Prefect's per-task cost (~50 ms, and a thread each) must stay small next to
# the work, yet a few thousand images still make several tasks, so that every worker of a small cluster
# gets some. A resize costs milliseconds, keeping an original ~40 µs: those go 5x more per task
# (250 k originals: 125 tasks 25.9 s, 25 tasks 16.5 s for the image stage).
IMAGES_PER_TASK = 2000
ORIGINALS_PER_TASK = 10_000
MIN_IMAGES_PER_TASK = 250
TASKS_WANTED = 8
# Images to resize go by their source bytes, which the decode's cost follows (an 8 MP photo of 1.3 MB takes
# ~6x a 1024x768 one of 150 KB): at most as many as 2000 Open Images photos (~300 KB) hold, and none under
# 16 MB (~0.3 s of work), so that 250 photos of 8 MP still make TASKS_WANTED tasks, not one.
RESIZE_BYTES_PER_TASK = 600 << 20
MIN_RESIZE_BYTES_PER_TASK = 16 << 20


def images_per_task(count: int, originals: bool = False, bytes_per_image: float | None = None) -> int:
    """Batch size for `count` images (or masks), `originals` when they are kept as they are: IMAGES_PER_TASK
    (ORIGINALS_PER_TASK), smaller when that would make few tasks; by bytes when `bytes_per_image` is known."""
    most, least = (ORIGINALS_PER_TASK if originals else IMAGES_PER_TASK), MIN_IMAGES_PER_TASK
    if bytes_per_image:
        most = max(1, min(most, int(RESIZE_BYTES_PER_TASK // bytes_per_image)))
        least = max(1, int(MIN_RESIZE_BYTES_PER_TASK // bytes_per_image))
    return max(least, min(most, -(-count // TASKS_WANTED)))


# Seconds a local-mode run (no PREFECT_API_URL) waits for its temporary Prefect server to answer; past them the
# run dies before it starts. Prefect's default, 20 s, ran out on a 2-core machine at load 6; a first start (a new
# database) took 42 s at load 11, and 120 s ran out at load 17 with two busy loops beside it.
LOCAL_SERVER_STARTUP_S = 300
# Failures kept per (file, check) in reports; the totals are always exact.
FAILURES_KEPT_PER_CHECK = 20


@dataclass(frozen=True)
class Limits:
    """Caps on untrusted input (see SECURITY.md). Each can be raised through its OPENIMAGES_ETL_* variable."""

    archive_bytes: int = 2 << 40  # total uncompressed size of an archive's members: 2 TiB
    archive_members: int = 10_000_000  # the official train split is ~1.7 M images + CSVs
    compression_ratio: int = 200  # uncompressed/compressed per member; CSVs deflate ~5x, bombs ~1000x
    image_pixels: int = 200_000_000  # a decompression bomb above this (real photos are < 50 MP)

    @classmethod
    def from_env(cls) -> Limits:
        values = {}
        for name in cls.__dataclass_fields__:
            raw = os.environ.get(f"OPENIMAGES_ETL_MAX_{name.upper()}")
            if raw is not None:
                try:
                    values[name] = int(raw)
                except ValueError:
                    raise UsageError(f"OPENIMAGES_ETL_MAX_{name.upper()} must be an integer, not {raw!r}") from None
        return cls(**values)
