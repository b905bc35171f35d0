"""The heap of a process that converts images in its threads: freed memory is reused within bounds, and large blocks
go back to the system."""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # glibc's mallopt parameters
# Blocks from 32 MB up get pages of their own, unmapped when freed; smaller ones (an image's pixels, 24 MB for a full
# 8 MP decode; read-ahead blocks and upload parts, 4 and 8 MB) come from the thread's arena, which keeps up to 64 MB
# freed at its top for the next image (glibc's own bounds for the thresholds it raises). One arena per core, not eight:
# each thread that ever ran a task kept an arena's worth.
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 64 << 20


def bound_the_heap() -> None:
    """Fix glibc's trim and mmap thresholds (setting either stops glibc from raising both to the largest block freed
    so far) and its number of arenas. Dask's 64 KB trim threshold (its MALLOC_TRIM_THRESHOLD_), which this set before,
    bounds RSS but has every image's buffers faulted in afresh: a 300k conversion of 0.79 MP JPEGs took 20 % longer
    (22 % on 2 threads), and of 8 MP ones in `tfds` mode 65 % longer. Exporting 3,000 images (430 MB) from S3 without
    Dask on 2 cores, the flow's peak RSS was 322 MB with that, 567 MB with these thresholds and glibc's 16 arenas,
    355-439 MB with 2 (2026-12-01): bounded by the arenas, not by the data. The user's variables win; other C libraries
    are left alone."""
    chosen = {"MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_ARENA_MAX"} & set(os.environ)
    if not sys.platform.startswith("linux") or chosen:
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl has no such setting)
        return
    libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    libc.mallopt(M_ARENA_MAX, max(2, len(os.sched_getaffinity(0))))
