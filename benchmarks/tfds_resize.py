"""The TFDS method (its Open Images builder's resizing), run with Datumaro's python, which has OpenCV:
full decode, cv2.resize INTER_LINEAR by sqrt(target / pixels), JPEG quality 72.

    tfds_resize.py SOURCE_DIR OUT_DIR TARGET_PIXELS THREADS [read]   -> prints {"seconds": ..., "cpu": ...}

With `read`, each thread reads its file inside the timed work, as an export does (the end-to-end comparison);
without, the bytes are in memory before the clock starts (the kernels' comparison).
"""

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np


def resize(data: bytes, target: int) -> bytes:
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags=3)
    height, width, _ = image.shape
    if height * width > target:
        factor = np.sqrt(target / (height * width))
        image = cv2.resize(image, dsize=None, fx=factor, fy=factor)
    return cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), 72])[1].tobytes()


source, out, target, threads = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
read_timed = sys.argv[5:] == ["read"]
cv2.setNumThreads(1)  # one image per thread, as our side does
files = sorted(source.glob("*.jpg"))
inputs = files if read_timed else [f.read_bytes() for f in files]
started, cpu = time.perf_counter(), time.process_time()
with ThreadPoolExecutor(threads) as pool:
    results = list(pool.map(lambda i: resize(i.read_bytes() if read_timed else i, target), inputs))
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
out.mkdir(parents=True, exist_ok=True)
for f, data in zip(files, results):
    (out / f.name).write_bytes(data)
print(json.dumps({"seconds": seconds, "cpu": cpu, "images": len(files)}))
