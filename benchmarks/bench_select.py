"""Selection at full size: the cost `--classes X --per-class 2000` adds to an export,
against `validate` on the same data.

The data is bench_validate's (Google's V4 train files at their real size: a 14.6 M-row bbox CSV, the 1.74 M-row image
list, 600 classes) with a generated 600-class hierarchy shaped like the real one: depth 4 under the root, 6 / 30 / 150
/ 414 classes per level, one class in 20 below the top level with a second parent. The class selected is a
mid-level one (level 2) with its subclasses, 2,000 images per class. The selection runs before anything is read for
the export (one streaming pass over the annotation CSVs, then the draw), so what it adds is its own time; the
partition of the bbox CSV with and without the selection applied is printed beside it.
Goals: the selection within 30 % of validate's time; peak RSS <= 2 GB.

    python benchmarks/bench_select.py [--rows 14600000] [--images 1740000] [--per-class 2000]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from common import OURS, machine, measure, prefect_server, table, verdict
from datasets import CACHE, official_annotations

LEVELS = (6, 30, 150, 414)  # classes per level below the root: 600 in all
SECOND_PARENT = 0.05


def hierarchy(labels: list[str], seed: int = 6) -> tuple[dict, str]:
    """A tree over `labels` (shuffled) with LEVELS, some classes under two parents; and a level-2 class to select."""
    rng = np.random.default_rng(seed)
    order = list(rng.permutation(labels))
    nodes = {mid: {"LabelName": mid} for mid in order}
    levels, start = [], 0
    for size in LEVELS:
        levels.append(order[start : start + size])
        start += size
    for upper, lower in zip(levels, levels[1:]):
        for mid in lower:
            parents = [upper[rng.integers(len(upper))]]
            if rng.random() < SECOND_PARENT:
                parents.append(upper[(upper.index(parents[0]) + 1) % len(upper)])
            for parent in parents:
                nodes[parent].setdefault("Subcategory", []).append(nodes[mid])
    root = {"LabelName": "/m/0bl9f", "Subcategory": [nodes[mid] for mid in levels[0]]}
    middle = max(
        levels[1], key=lambda mid: (len(json.dumps(nodes[mid])), mid)
    )  # the level-2 class with the most below it
    return root, middle


def with_hierarchy(rows: int, images: int) -> tuple[str, str]:
    """bench_validate's folder plus a hierarchy JSON, as links (the listing follows links to files)."""
    source = official_annotations(rows, images)
    labels = [line.split(",")[0] for line in (source / "class-descriptions-boxable.csv").read_text().splitlines()]
    tree, middle = hierarchy(labels)
    folder = CACHE / f"{source.name}-hierarchy"
    folder.mkdir(exist_ok=True)
    for path in source.iterdir():
        if not (folder / path.name).exists():
            (folder / path.name).symlink_to(path)
    (folder / "bbox_labels_600_hierarchy.json").write_text(json.dumps(tree))
    return str(folder), middle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=14_600_000)
    parser.add_argument("--images", type=int, default=1_740_000)
    parser.add_argument("--per-class", type=int, default=2000)
    args = parser.parse_args()
    source, middle = with_hierarchy(args.rows, args.images)
    print(
        f"{machine()}\ninput: {args.rows} box rows, {args.images} images, 600 classes in 4 levels ({source}); "
        f"selecting {middle}"
    )
    with prefect_server() as env:
        validate = measure("openimages-etl validate (flow)", [*OURS, "validate", source], env)
    select = measure(
        f"select {middle} --per-class {args.per_class}",
        [*OURS, "select", source, middle, "--per-class", str(args.per_class)],
    )
    partition = measure("partition the bbox CSV", [*OURS, "partition", source])
    selected = measure(
        "partition it, selection applied",
        [*OURS, "partition", source, "--select", middle, "--per-class", str(args.per_class)],
    )
    print(table([validate, select, partition, selected]))
    print(
        f"selected: {select.output['classes']} classes, {select.output['images']} images per subset; "
        f"index (untimed) {select.output['index_seconds']:.1f} s"
    )
    print(verdict("selection / validate", select.seconds / validate.seconds, 0.3, higher_is_better=False))
    print(verdict("selection: peak RSS GB", select.peak_mb / 1024, 2, higher_is_better=False))
    print(
        f"partition with the selection / without: {selected.seconds / partition.seconds:.2f} "
        f"(peak RSS {selected.peak_mb / 1024:.2f} GB; "
        f"rows written {selected.output['published']} of {partition.output['published']})"
    )


if __name__ == "__main__":
    main()
