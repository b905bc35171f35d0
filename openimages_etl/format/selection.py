"""Choose what an export holds: classes through the hierarchy, quotas per class and subset, image-id lists, box filters.

Plain Python on polars: one streaming pass over the boxes, masks and positive image labels collects the
(subset, ImageID, LabelName) of the selected classes; the draw is then a loop over classes (not rows).
"""

from __future__ import annotations

import difflib
import hashlib
import io
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import fsspec
import numpy as np
import polars as pl

from openimages_etl.config import BoxFlag
from openimages_etl.errors import SourceError, UsageError
from openimages_etl.format.csvcopy import local_csv
from openimages_etl.format.hierarchy import Hierarchy
from openimages_etl.format.layout import CsvFile, Layout
from openimages_etl.format.tables import CSV_PASSES
from openimages_etl.format.validation import Keys, TableCheck
from openimages_etl.options import SelectionSpec
from openimages_etl.schemas.kinds import ANNOTATIONS, TableKind
from openimages_etl.schemas.tables import BoxSchema as Box
from openimages_etl.schemas.tables import ClassDescriptionSchema as Classes
from openimages_etl.schemas.tables import ImageLabelSchema as ImageLabel
from openimages_etl.schemas.tables import ImageListSchema as ImageList
from openimages_etl.storage.workarea import StoredFile, WorkArea, read_stored, scan_stored

SUBSET = "subset"
HIERARCHY_FILE = "hierarchy.json"  # the hierarchy pruned to a selection, in the work area
FLAG_COLUMNS = {
    BoxFlag.occluded: Box.is_occluded,
    BoxFlag.truncated: Box.is_truncated,
    BoxFlag.group_of: Box.is_group_of,
    BoxFlag.depiction: Box.is_depiction,
    BoxFlag.inside: Box.is_inside,
}


@dataclass(frozen=True)
class Selection:
    """The outcome: small, passed between tasks. `keys` is the image key table cut down to the chosen images."""

    spec: SelectionSpec
    keys: Keys
    images: StoredFile | None  # parquet (subset, ImageID) of the chosen images; None: every image
    mids: tuple[str, ...]  # the selected classes after expansion and exclusion (empty: no class selection)
    requested: tuple[tuple[str, str, str], ...] = ()  # (entry as given, MID, display name)
    merge: dict[str, str] = field(default_factory=dict)  # descendant MID -> requested MID (merge_subclasses)
    counts: tuple[tuple[str, str, int, int], ...] = ()  # (subset, MID, images available, images selected)
    notes: tuple[str, ...] = ()

    @property
    def requested_mids(self) -> list[str]:
        return list(dict.fromkeys(mid for _, mid, _ in self.requested))

    def label_filter(self, kind: TableKind) -> pl.Expr:
        """Rows of a boxes / labels / masks CSV that the selection keeps (images aside)."""
        keep = pl.col(Box.label_name).is_in(list(self.mids)) if self.spec.only_matching else pl.lit(True)
        return keep & box_filter(self.spec) if kind == TableKind.boxes else keep

    def relabel(self, kind: TableKind) -> pl.Expr:
        """LabelName after merge_subclasses: boxes, masks and positive labels (a subclass verified absent says nothing
        about its parent, so negatives keep their class)."""
        label = pl.col(Box.label_name)
        if not self.merge:
            return label
        merged = label.replace(self.merge)
        if kind == TableKind.labels:
            merged = pl.when(_confidence() == 1).then(merged).otherwise(label)
        return merged.alias(Box.label_name)


def box_filter(spec: SelectionSpec) -> pl.Expr:
    """Boxes kept by drop_boxes: none of the named flags at 1 (0, -1 unknown or empty stay)."""
    keep = pl.lit(True)
    for flag in spec.drop_boxes:
        keep &= pl.col(FLAG_COLUMNS[flag]).str.strip_chars().cast(pl.Float64, strict=False).ne(1).fill_null(True)
    return keep


def _confidence() -> pl.Expr:
    return pl.col(ImageLabel.confidence).str.strip_chars().cast(pl.Float64, strict=False)


def normalised(name: str) -> str:
    return " ".join(name.split()).casefold()


def resolve(entries: list[str], classes: pl.DataFrame) -> tuple[list[tuple[str, str, str]], list[str]]:
    """Each entry (a MID or a display name, any case and spacing) as (entry, MID, display name) rows; a display
    name that several MIDs share gives each of them and a note. Unknown entries: UsageError naming the nearest."""
    names = classes.select(Classes.label_name, pl.col(Classes.display_name).fill_null(pl.col(Classes.label_name)))
    by_mid = dict(names.iter_rows())
    by_name: dict[str, list[str]] = {}
    for mid, display in names.iter_rows():
        by_name.setdefault(normalised(display), []).append(mid)
    rows, notes, unknown = [], [], []
    for entry in entries:
        mids = [entry.strip()] if entry.strip() in by_mid else by_name.get(normalised(entry), [])
        if not mids:
            unknown.append(entry)
        if len(mids) > 1:
            notes.append(f"'{entry}' names {len(mids)} classes: " + ", ".join(mids))
        rows += [(entry, mid, by_mid[mid]) for mid in mids]
    if unknown:
        choices = {normalised(name): name for name in sorted(set(by_mid.values()))}
        nearest = {
            u: [choices[c] for c in difflib.get_close_matches(normalised(u), list(choices), n=3, cutoff=0.5)]
            for u in unknown
        }
        hints = [f"'{u}' (nearest: {', '.join(names) or 'none'})" for u, names in nearest.items()]
        raise UsageError("unknown classes " + "; ".join(hints))
    return rows, notes


def _list_bytes(url: str) -> bytes:
    try:
        with fsspec.open(url, "rb") as handle:
            return handle.read()
    except (OSError, ValueError) as exc:
        raise SourceError(f"image-id list {url}: cannot read it ({exc})") from exc


def key_parameters(spec: SelectionSpec) -> dict:
    """What the idempotency key records: the parameters and the image-id list's sha256 (the same URL with other ids
    is another export)."""
    digest = hashlib.sha256(_list_bytes(spec.image_ids)).hexdigest() if spec.image_ids else None
    return {**spec.parameters(), "image_ids_sha256": digest}


def read_image_ids(url: str) -> pl.DataFrame:
    """(subset or null, ImageID) from a text file of ids (`subset/ImageID` allowed) or a CSV with an ImageID column."""
    text = _list_bytes(url).decode("utf-8-sig", errors="replace")
    first = text.split("\n", 1)[0]
    if ImageList.image_id in [c.strip() for c in first.split(",")]:
        frame = pl.read_csv(io.StringIO(text), infer_schema=False)
        subset = pl.col(ImageList.subset) if ImageList.subset in frame.columns else pl.lit(None, pl.String)
        frame = frame.select(subset.alias(SUBSET), pl.col(ImageList.image_id))
    else:
        lines = pl.Series("line", text.splitlines()).str.strip_chars()
        lines = lines.filter((lines != "") & ~lines.str.starts_with("#"))
        parts = lines.str.splitn("/", 2).struct.rename_fields(["a", "b"]).struct.unnest()
        frame = parts.select(
            pl.when(pl.col("b").is_not_null()).then(pl.col("a")).alias(SUBSET),
            pl.coalesce("b", "a").alias(ImageList.image_id),
        )
    return frame.with_columns(pl.col(ImageList.image_id).str.strip_chars()).unique()


def class_pairs(layout: Layout, keys: Keys, mids: list[str], spec: SelectionSpec) -> pl.DataFrame:
    """(subset, ImageID, LabelName) of every image that has a kept box, a mask or a positive label of one of `mids`."""
    frames = []
    for table in layout.tables:
        if table.kind not in ANNOTATIONS:
            continue
        keep = pl.col(Box.label_name).is_in(mids)
        if table.kind == TableKind.labels:
            keep &= _confidence() == 1
        if table.kind == TableKind.boxes:
            keep &= box_filter(spec)
        with CSV_PASSES:
            frames.append(
                _scan(table).filter(keep).select(ImageList.image_id, Box.label_name).collect(engine="streaming")
            )
    listed = scan_stored(keys.images).select(ImageList.image_id, SUBSET)
    # Duplicates go after the pass (in the streaming pass, `unique` took longer than the read).
    pairs = (
        pl.concat(frames).lazy().unique()
        if frames
        else pl.LazyFrame(schema={ImageList.image_id: pl.String, Box.label_name: pl.String})
    )
    return (
        pairs.join(listed, on=ImageList.image_id, how="inner")
        .select(SUBSET, ImageList.image_id, Box.label_name)
        .collect()
    )


def _scan(table: CsvFile) -> pl.LazyFrame:
    return pl.scan_csv(
        local_csv(table), has_header=table.header, schema={c: pl.String for c in table.columns}, raise_if_empty=False
    )


def draw(pairs: pl.DataFrame, candidates: pl.DataFrame, spec: SelectionSpec) -> pl.DataFrame:
    """The chosen (subset, ImageID): per class quotas, rarest class first, then max_images, in the seed's order
    (each image's 64-bit hash of its ImageID with the seed: sorting numbers, not strings)."""
    rank = pl.col(ImageList.image_id).hash(spec.seed).alias("rank")
    ranked, pairs = candidates.with_columns(rank), pairs.with_columns(rank)
    chosen = []
    for subset in sorted(ranked.get_column(SUBSET).unique()):
        rows = ranked.filter(pl.col(SUBSET) == subset).sort("rank")
        if spec.per_class is not None:
            rows = rows.filter(
                _quota(pairs.filter(pl.col(SUBSET) == subset), rows.get_column("rank").to_numpy(), spec.per_class)
            )
        chosen.append(rows.head(spec.max_images) if spec.max_images is not None else rows)
    return (
        pl.concat(chosen).select(SUBSET, ImageList.image_id).sort(SUBSET, ImageList.image_id) if chosen else candidates
    )


def _quota(pairs: pl.DataFrame, ranks: np.ndarray, per_class: int) -> pl.Series:
    """Which of a subset's candidates (their `ranks`, in draw order) to take for up to `per_class` images per class."""
    classes = (
        pairs.group_by(Box.label_name).agg(pl.col("rank").sort(), pl.len()).sort("len", Box.label_name)
    )  # rarest first
    taken = np.zeros(len(ranks), dtype=bool)
    for class_ranks in classes.get_column("rank"):
        positions = np.searchsorted(ranks, class_ranks.to_numpy())  # in draw order, as the ranks are sorted
        free = positions[~taken[positions]]
        taken[free[: max(0, per_class - (len(positions) - len(free)))]] = True  # images taken for other classes count
    return pl.Series(taken)


def _classes(
    layout: Layout, keys: Keys, spec: SelectionSpec
) -> tuple[list[tuple[str, str, str]], list[str], dict[str, str], list[str]]:
    """The requested classes resolved, the selected set (expanded, less the excluded), the merge map, notes."""
    classes = read_stored(keys.labels, [Classes.label_name, Classes.display_name])
    requested, notes = resolve(list(spec.classes), classes)
    excluded, more_notes = resolve(list(spec.exclude_classes), classes)
    hierarchy = Hierarchy.read(layout) if spec.subclasses else Hierarchy({}, {})  # empty: every class stands alone
    wanted = list(dict.fromkeys(mid for _, mid, _ in requested))
    mids = sorted(hierarchy.descendants(wanted) - hierarchy.descendants([mid for _, mid, _ in excluded]))
    merge = hierarchy.merge_map(wanted, set(mids)) if spec.merge_subclasses else {}
    return requested, mids, merge, notes + more_notes


def select(layout: Layout, keys: Keys, spec: SelectionSpec, subsets: list[str], work_dir: WorkArea | Path) -> Selection:
    """Resolve, expand and draw; write the chosen images' key table and (subset, ImageID) list into `work_dir`."""
    if not spec.picks_images:  # drop_boxes alone: every image stays
        return Selection(spec, keys, None, ())
    requested, mids, merge, notes = _classes(layout, keys, spec)
    candidates = (
        scan_stored(keys.images).filter(pl.col(SUBSET).is_in(subsets)).select(SUBSET, ImageList.image_id).collect()
    )
    if spec.image_ids:
        listed = read_image_ids(spec.image_ids)
        candidates = (
            candidates.join(listed, on=ImageList.image_id, how="inner", suffix="_listed")
            .filter(pl.col(f"{SUBSET}_listed").is_null() | (pl.col(f"{SUBSET}_listed") == pl.col(SUBSET)))
            .select(SUBSET, ImageList.image_id)
        )
        notes.append(
            f"{listed.height} ids listed in {spec.image_ids}, {candidates.height} of them in the chosen subsets"
        )
    pairs = (
        class_pairs(layout, keys, mids, spec).join(candidates, on=[SUBSET, ImageList.image_id], how="semi")
        if spec.classes
        else pl.DataFrame(schema={SUBSET: pl.String, ImageList.image_id: pl.String, Box.label_name: pl.String})
    )
    if spec.classes:
        candidates = pairs.select(SUBSET, ImageList.image_id).unique()
    chosen = draw(pairs, candidates, spec)
    work = WorkArea.of(work_dir)
    images = work.write_parquet("selected-images.parquet", chosen)
    kept = work.sink_parquet(
        "selected-keys.parquet",
        scan_stored(keys.images).join(
            chosen.lazy(), on=[SUBSET, ImageList.image_id], how="semi", maintain_order="left"
        ),
    )
    per_subset = dict(chosen.group_by(SUBSET).len().iter_rows())
    available = pairs.group_by(SUBSET, Box.label_name).agg(pl.len().alias("available"))
    selected = (
        pairs.join(chosen, on=[SUBSET, ImageList.image_id], how="semi")
        .group_by(SUBSET, Box.label_name)
        .agg(pl.len().alias("selected"))
    )
    counts = available.join(selected, on=[SUBSET, Box.label_name], how="left").fill_null(0).sort(SUBSET, Box.label_name)
    return Selection(
        spec,
        replace(keys, images=kept, images_per_subset=per_subset),
        images,
        tuple(mids),
        tuple(requested),
        merge,
        tuple(counts.iter_rows()),
        tuple(notes),
    )


def matching_masks(check: TableCheck, selection: Selection, work: WorkArea) -> TableCheck:
    """With only_matching, the segmentation CSV's mask jobs cut to the selected classes: other masks are not read."""
    if not (selection.spec.only_matching and check.mask_jobs):
        return check
    name = check.mask_jobs.name.removesuffix(".parquet") + ".selected.parquet"
    return replace(
        check,
        mask_jobs=work.sink_parquet(
            name, scan_stored(check.mask_jobs).filter(pl.col(Box.label_name).is_in(list(selection.mids)))
        ),
    )


def kept_classes(selection: Selection, parts: list) -> list[str]:
    """The classes the export's kept rows use (partition results' `per_class`), plus the requested ones."""
    used = {label for part in parts for _, label, _ in part.per_class}
    return sorted(used | set(selection.requested_mids))


def prune_hierarchy(layout: Layout, classes: list[str], work: WorkArea) -> tuple[list[str], StoredFile | None]:
    """Write the hierarchy cut to the paths from its root to `classes` into `work`; return `classes` with the classes
    on those paths (every node but the root must stay defined in the class list), and the file (None without a
    hierarchy)."""
    if not layout.hierarchy:
        return classes, None
    tree = Hierarchy.read(layout).pruned(set(classes))
    nodes = Hierarchy.from_tree(tree).nodes()
    with work.create(HIERARCHY_FILE) as handle:
        handle.write(json.dumps(tree, indent=1).encode())
    return sorted(set(classes) | (nodes - {tree["LabelName"]})), work.stored(HIERARCHY_FILE, len(nodes))


def image_id_list(selection: Selection) -> tuple[bytes, dict]:
    """`Subset,ImageID` of the chosen images (given back as image_ids, it selects the same export), with its line of
    the report's selection section."""
    data = (
        read_stored(selection.images)
        .select(pl.col(SUBSET).alias(ImageList.subset), ImageList.image_id)
        .write_csv()
        .encode()
    )
    return data, {"images": selection.images.count, "sha256": hashlib.sha256(data).hexdigest()}


def selection_summary(selection: Selection, parts: list | None = None) -> dict:
    """The report's selection section: parameters, resolved classes, per class and subset images available, selected
    and annotations kept (from the partition results `parts`), and the quotas not met."""
    names = dict(
        read_stored(selection.keys.labels, [Classes.label_name, Classes.display_name]).drop_nulls().iter_rows()
    )
    kept: dict[tuple[str, str], dict[str, int]] = {}
    for part in parts or []:
        for subset, label, rows in part.per_class:
            counts = kept.setdefault((subset, label), {})
            counts[part.kind] = counts.get(part.kind, 0) + rows
    rows = [
        {
            "subset": subset,
            "mid": mid,
            "name": names.get(mid, mid),
            "available": available,
            "selected": chosen,
            **{kind: kept.get((subset, mid), {}).get(kind, 0) for kind in ANNOTATIONS},
        }
        for subset, mid, available, chosen in selection.counts
    ]
    quota = selection.spec.per_class
    shortfalls = [
        f"{r['subset']}: {r['name']} ({r['mid']}) {r['selected']} of {quota} images ({r['available']} available)"
        for r in rows
        if quota is not None and r["selected"] < quota
    ]
    return {
        "parameters": selection.spec.parameters(),
        "requested": [{"entry": entry, "mid": mid, "name": name} for entry, mid, name in selection.requested],
        "classes_selected": len(selection.mids),
        "merged": len(selection.merge),
        "notes": list(selection.notes),
        "images": dict(selection.keys.images_per_subset) if selection.images else None,
        "classes": rows,
        "shortfalls": shortfalls,
    }
