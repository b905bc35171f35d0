#!/usr/bin/env python3
"""Import an Open Images dataset with Datumaro and print what it saw, as JSON.

Runs with the Datumaro venv's python (see setup_venv.sh), never with the
project's venv, and imports nothing from openimages_etl:

    "$DATUMARO_VENV/bin/python" tests/datumaro/dm_summary.py EXPORT.zip|EXPORT_DIR

A zip is extracted to a temporary directory first and imported from its root,
as CVAT does. The dataset is read with ``Dataset.import_from(path, "open_images")``.
With ``--cvat-frame-sizes sizes.json`` the script also passes ``image_meta`` the way
CVAT's importer does when the archive carries no annotations/images.meta (CVAT sizes
the listed items from the task's frames): use it for annotation-only zips.
With ``--sizes-from-image-files`` every image file's own size is added to ``image_meta``
where images.meta has none: Datumaro sizes masks only from images.meta, and its exporter
writes sizes there only for items with a box, so its own import of its own export drops
the masks of box-less items otherwise (``Can't decode mask ... missing image file``).

Output (stdout, one JSON document):

    {"items": [{"id", "subset", "has_image", "image_size": [h, w] | null,
                "bboxes": [{"label", "x", "y", "w", "h", "group", "attributes"}],
                "labels": [{"label", "attributes"}],
                "masks":  [{"label", "attributes", "group", "box": [x, y, w, h] | null, "area",
                            "bbox": [x, y, w, h] | null, "shape": [...], "pixels"}]}],
     "categories": [label names, in Datumaro's order],
     "label_parents": {label: parent label},
     "warnings": [messages Datumaro logged at WARNING or above]}

Labels are resolved to names through the label categories (for Open Images these
are the LabelName values, e.g. "/m/01g317"). Box coordinates are absolute pixels
rounded to 2 decimals. A mask's "area" counts its non-zero pixels, its "bbox" is
the pixel extent of those (w = x_max - x_min + 1, as Datumaro's find_mask_bbox;
null for an empty mask) and "shape" is the decoded array's shape (it should be
the image's [h, w]). A mask's "box" is the box it is grouped with (the box of its
non-zero group, rounded like "bboxes"; null when ungrouped), so grouping compares
without the group numbers; "pixels" is a digest of its non-zero pixels. Items are sorted by (subset, id);
the annotations of an item by label and coordinates, so the output does not depend on CSV row order.

"warnings" matters: Datumaro only logs (and drops the annotation) when it cannot
find an image or cannot size a box or mask. Tests should assert it is empty.

Any error from Datumaro (or a mask that cannot be decoded) is left to propagate:
the script exits 1 with the traceback on stderr, then a last stderr line
"dm_summary: error: <outer> <- <cause> ..." naming the root cause, and prints nothing
on stdout. Usage errors exit 2.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import tempfile
import traceback
import zipfile

import numpy as np


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _jsonable(value):
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _mask_extent(mask: np.ndarray):
    flat = mask if mask.ndim == 2 else np.any(mask, axis=tuple(range(2, mask.ndim)))
    cols = np.flatnonzero(np.any(flat, axis=0))
    rows = np.flatnonzero(np.any(flat, axis=1))
    if cols.size == 0:
        return None
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]


_IMAGE_LIST_PATTERNS = (
    "image_ids_and_rotation.csv",
    "*-images-with-rotation.csv",
    "*-images-with-labels-with-rotation.csv",
)


def cvat_image_meta(dataset_dir: str, frame_sizes: dict) -> dict | None:
    """What CVAT's Open Images importer passes as ``image_meta``.

    CVAT reads annotations/images.meta itself when the archive has one (returns None:
    Datumaro then loads the file). Otherwise it sizes the items listed in the image
    lists under annotations/ (only there, not at the root) from the task's frames.
    """
    import fnmatch

    ann_dir = os.path.join(dataset_dir, "annotations")
    if os.path.isfile(os.path.join(ann_dir, "images.meta")):
        return None
    meta = {}
    if os.path.isdir(ann_dir):
        for fname in sorted(os.listdir(ann_dir)):
            if not any(fnmatch.fnmatch(fname, pat) for pat in _IMAGE_LIST_PATTERNS):
                continue
            with open(os.path.join(ann_dir, fname), encoding="utf-8") as f:
                next(f, None)
                for row in f:
                    item_id = row.split(",")[0]
                    if item_id in frame_sizes:
                        h, w = frame_sizes[item_id]
                        meta[item_id] = (int(h), int(w))
    return meta


def sizes_with_image_files(dataset_dir: str) -> dict:
    """images.meta's sizes, completed with the size of every image file under images/<subset>/ it does not list."""
    from datumaro.components.media import Image
    from datumaro.util.image import find_images, load_image_meta_file

    meta_path = os.path.join(dataset_dir, "annotations", "images.meta")
    meta = load_image_meta_file(meta_path) if os.path.isfile(meta_path) else {}
    images_dir = os.path.join(dataset_dir, "images")
    for path in find_images(images_dir, recursive=True) if os.path.isdir(images_dir) else []:
        item_id = os.path.splitext(os.path.relpath(path, images_dir))[0].replace(os.sep, "/").split("/", 1)[-1]
        meta.setdefault(item_id, Image.from_file(path=path).size)
    return meta


def summarize(
    dataset_dir: str, fmt: str = "open_images", frame_sizes: dict | None = None, sizes_from_files: bool = False
) -> dict:
    import datumaro as dm
    from datumaro.components.annotation import AnnotationType

    collector = _Collect()
    root_logger = logging.getLogger()
    root_logger.addHandler(collector)
    try:
        kwargs = {"image_meta": sizes_with_image_files(dataset_dir)} if sizes_from_files else {}
        if frame_sizes is not None:
            meta = cvat_image_meta(dataset_dir, frame_sizes)
            if meta is not None:
                kwargs["image_meta"] = meta
        dataset = dm.Dataset.import_from(dataset_dir, fmt, **kwargs)

        label_cats = dataset.categories().get(AnnotationType.label)
        names = [c.name for c in label_cats] if label_cats is not None else []
        parents = {c.name: c.parent for c in label_cats if c.parent} if label_cats is not None else {}

        def name(idx):
            if idx is None:
                return None
            if not 0 <= idx < len(names):
                raise ValueError(f"annotation refers to label index {idx}, categories have {len(names)}")
            return names[idx]

        items = []
        for item in dataset:
            media = item.media
            size = media.size if media is not None else None
            bboxes, labels, masks = [], [], []
            for ann in item.annotations:
                attrs = _jsonable(dict(ann.attributes))
                if ann.type == AnnotationType.bbox:
                    bboxes.append(
                        {
                            "label": name(ann.label),
                            "x": round(float(ann.x), 2),
                            "y": round(float(ann.y), 2),
                            "w": round(float(ann.w), 2),
                            "h": round(float(ann.h), 2),
                            "group": int(ann.group),
                            "attributes": attrs,
                        }
                    )
                elif ann.type == AnnotationType.label:
                    labels.append({"label": name(ann.label), "attributes": attrs})
                elif ann.type == AnnotationType.mask:
                    image = np.asarray(ann.image)  # decodes (and resizes) the PNG now
                    masks.append(
                        {
                            "label": name(ann.label),
                            "attributes": attrs,
                            "group": int(ann.group),
                            "area": int(np.count_nonzero(image)),
                            "bbox": _mask_extent(image),
                            "shape": list(image.shape),
                            "pixels": hashlib.sha1(np.packbits(image != 0)).hexdigest()[:16],
                        }
                    )
                else:
                    raise ValueError(f"unexpected annotation type {ann.type!r} in item {item.id!r}")

            boxes_by_group = {b["group"]: [b["x"], b["y"], b["w"], b["h"]] for b in bboxes if b["group"]}
            for mask in masks:
                mask["box"] = boxes_by_group.get(mask["group"]) if mask["group"] else None
            bboxes.sort(
                key=lambda b: (
                    str(b["label"]),
                    b["x"],
                    b["y"],
                    b["w"],
                    b["h"],
                    json.dumps(b["attributes"], sort_keys=True),
                )
            )
            labels.sort(key=lambda a: (str(a["label"]), json.dumps(a["attributes"], sort_keys=True)))
            masks.sort(key=lambda m: (str(m["label"]), json.dumps(m["attributes"], sort_keys=True), m["bbox"] or []))
            items.append(
                {
                    "id": item.id,
                    "subset": item.subset,
                    "has_image": media is not None,
                    "image_size": [int(size[0]), int(size[1])] if size is not None else None,
                    "bboxes": bboxes,
                    "labels": labels,
                    "masks": masks,
                }
            )
        items.sort(key=lambda it: (it["subset"] or "", it["id"]))
    finally:
        root_logger.removeHandler(collector)

    return {
        "items": items,
        "categories": names,
        "label_parents": parents,
        "warnings": collector.messages,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="a .zip or a directory in Open Images layout")
    parser.add_argument("--format", default="open_images", help="Datumaro format name (default: open_images)")
    parser.add_argument("--indent", type=int, default=None, help="pretty-print the JSON")
    parser.add_argument(
        "--cvat-frame-sizes",
        metavar="JSON",
        help="emulate importing into a CVAT task whose frames have these sizes: a JSON file "
        '{"<ImageID>": [height, width]}. As CVAT does, it is used only when the archive has no '
        "annotations/images.meta, and only for ImageIDs listed in annotations/*-images-with-rotation.csv "
        "(or image_ids_and_rotation.csv)",
    )
    parser.add_argument(
        "--sizes-from-image-files",
        action="store_true",
        help="size items from their image files where images.meta has no size (see above)",
    )
    args = parser.parse_args(argv)

    frame_sizes = None
    if args.cvat_frame_sizes:
        with open(args.cvat_frame_sizes, encoding="utf-8") as f:
            frame_sizes = json.load(f)

    path = args.path
    if not os.path.exists(path):
        parser.error(f"no such file or directory: {path}")

    if os.path.isdir(path):
        summary = summarize(path, args.format, frame_sizes, args.sizes_from_image_files)
    elif zipfile.is_zipfile(path):
        with tempfile.TemporaryDirectory(prefix="dm_summary_") as tmp:
            with zipfile.ZipFile(path) as zf:
                zf.extractall(tmp)
            summary = summarize(tmp, args.format, frame_sizes, args.sizes_from_image_files)
    else:
        parser.error(f"not a directory or a zip file: {path}")

    json.dump(summary, sys.stdout, indent=args.indent, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


def _cause_chain(exc: BaseException) -> str:
    parts = []
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        parts.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    return " <- ".join(parts)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:  # report, never swallow: full traceback, then a one-line summary
        traceback.print_exc()
        print(f"dm_summary: error: {_cause_chain(exc)}", file=sys.stderr)
        sys.exit(1)
