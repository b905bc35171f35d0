"""The heap of a process that converts images in its threads: freed memory is reused within bounds, and large blocks
go back to the system."""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
# Blocks from 4 MB up (read-ahead blocks, upload parts) get pages of their own, unmapped when freed; smaller ones (an
# image's pixels, its planes, its JPEG) come from the thread's arena, which keeps up to 8 MB freed at its top for the
# next image.
MMAP_THRESHOLD = 4 << 20
TRIM_THRESHOLD = 8 << 20


def bound_the_heap() -> None:
    """Fix glibc's trim and mmap thresholds (setting either stops glibc from raising both to the largest block freed
    so far). Raised thresholds kept what a batch's reads and uploads had held: without Dask, where tasks run in the
    flow's own threads, RSS climbed batch after batch (3,000 images from S3: 499 MB peak, issue 13). Dask's 64 KB
    trim threshold (its MALLOC_TRIM_THRESHOLD_) bounds RSS too, but every image's buffers are then faulted in afresh:
    a 300k conversion of 0.79 MP JPEGs took 20 % longer (22 % on 2 threads, 2026-12-01). The user's variables win;
    other C libraries are left alone."""
    if not sys.platform.startswith("linux") or {"MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_"} & set(os.environ):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl has no such setting)
        return
    libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
