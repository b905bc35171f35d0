"""Datumaro's side of the export benchmark, run with Datumaro's own python: import a dataset,
export it as open_images."""

import json
import sys
import time

import datumaro as dm

source, dest = sys.argv[1], sys.argv[2]
started = time.perf_counter()
dataset = dm.Dataset.import_from(source, "open_images")
dataset.export(dest, "open_images", save_media=True)
print(json.dumps({"seconds": time.perf_counter() - started, "items": len(dataset)}))
