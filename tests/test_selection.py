"""Selection by class through the hierarchy, quotas, image-id lists and box filters: the rules, then the flow."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import fsspec
import numpy as np
import polars as pl
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from pydantic import ValidationError

from openimages_etl.cli import main
from openimages_etl.config import BoxFlag
from openimages_etl.errors import UsageError
from openimages_etl.flows import export_open_images
from openimages_etl.format.hierarchy import Hierarchy
from openimages_etl.format.layout import discover
from openimages_etl.format.selection import _quota, read_image_ids, resolve, select
from openimages_etl.format.validation import build_keys
from openimages_etl.options import ExportOptions, SelectionSpec
from openimages_etl.storage.locations import DatasetRoot

from .selection_data import CLASSES, HIERARCHY, make_dataset

SUBSETS = ["train", "validation"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("selection") / "ds")


@pytest.fixture(scope="module")
def indexed(dataset, tmp_path_factory):
    work = tmp_path_factory.mktemp("keys")
    layout = discover(DatasetRoot(str(dataset)), work / "index")
    return layout, build_keys(layout, work)


def chosen(indexed, tmp_path, **spec) -> dict[str, list[str]]:
    selection = select(*indexed, SelectionSpec(**spec), SUBSETS, tmp_path / "selection")
    frame = pl.read_parquet(selection.images.url)
    return {s: sorted(frame.filter(pl.col("subset") == s).get_column("ImageID")) for s in SUBSETS}


CLASS_TABLE = pl.DataFrame({"LabelName": list(CLASSES), "DisplayName": list(CLASSES.values())})


@pytest.mark.parametrize(
    ("entries", "mids"),
    [
        (["vehicle"], ["/m/veh"]),
        (["  TOY   car "], ["/m/toycar"]),
        (["/m/dog", "Car"], ["/m/dog", "/m/car"]),
        (["bat"], ["/m/bat1", "/m/bat2"]),  # one display name, two classes: both, with a note
    ],
)
def test_names_and_mids_resolve(entries, mids):
    rows, notes = resolve(entries, CLASS_TABLE)
    assert [mid for _, mid, _ in rows] == mids
    assert bool(notes) == (entries == ["bat"])


def test_unknown_class_is_a_usage_error_naming_the_nearest():
    with pytest.raises(UsageError, match=r"'vehicel' \(nearest: Vehicle"):
        resolve(["vehicel"], CLASS_TABLE)


def test_expansion_follows_subcategories_through_every_parent_not_parts():
    tree = Hierarchy.from_tree(HIERARCHY)
    assert tree.descendants(["/m/veh"]) == {"/m/veh", "/m/car", "/m/toycar", "/m/truck", "/m/boat", "/m/rocket"}
    assert tree.descendants(["/m/toy"]) == {"/m/toy", "/m/toycar"}  # Toy car's second parent
    assert "/m/wheel" not in tree.descendants(["/m/car"])  # a Part edge


@pytest.mark.parametrize(
    ("requested", "target"),
    [(["/m/car", "/m/toy"], "/m/car"), (["/m/toy", "/m/car"], "/m/toy"), (["/m/veh", "/m/toy"], "/m/toy")],
)  # nearest first, then first requested
def test_merge_goes_to_the_nearest_requested_ancestor(requested, target):
    tree = Hierarchy.from_tree(HIERARCHY)
    assert tree.merge_map(requested, tree.descendants(requested))["/m/toycar"] == target


def test_pruned_hierarchy_keeps_the_paths_to_the_kept_classes():
    pruned = Hierarchy.from_tree(HIERARCHY).pruned({"/m/toycar", "/m/dog"})
    assert pruned == {
        "LabelName": "/m/0bl9f",
        "Subcategory": [
            {
                "LabelName": "/m/veh",
                "Subcategory": [{"LabelName": "/m/car", "Subcategory": [{"LabelName": "/m/toycar"}]}],
            },
            {"LabelName": "/m/toy", "Subcategory": [{"LabelName": "/m/toycar"}]},
            {"LabelName": "/m/dog"},
        ],
    }


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"classes": ("Vehicle",), "exclude_classes": ("Rocket",)},
            {"train": ["t01", "t02", "t03", "t05", "t07", "t08", "t09"], "validation": ["v01", "v02", "v04"]},
        ),  # t04: only a rocket
        ({"classes": ("Vehicle",), "subclasses": False}, {"train": ["t09"], "validation": []}),
        ({"classes": ("Toy",)}, {"train": ["t05", "t11"], "validation": []}),  # t05 through Toy car's second parent
        (
            {"classes": ("Truck",), "drop_boxes": (BoxFlag.group_of,)},
            {"train": ["t08"], "validation": ["v02"]},
        ),  # t02's box is group-of
        ({"classes": ("Dog",), "drop_boxes": (BoxFlag.depiction,)}, {"train": ["t01", "t06"], "validation": ["v03"]}),
        (
            {"classes": ("Car",)},
            {"train": ["t01", "t02", "t05", "t07", "t08"], "validation": ["v01"]},
        ),  # t06's car label is negative
    ],
)
def test_images_containing_the_selected_classes(indexed, tmp_path, spec, expected):
    assert chosen(indexed, tmp_path, **spec) == expected


def test_an_image_chosen_for_one_class_counts_for_every_class_it_holds():
    pairs = pl.DataFrame({"ImageID": ["A", "A", "B", "C"], "LabelName": ["x", "y", "x", "y"], "rank": [1, 1, 2, 3]})
    ranks = np.array([1, 2, 3])  # A, B, C in draw order
    assert _quota(pairs, ranks, 1).to_list() == [True, False, False]  # A fills both quotas
    rare = pairs.vstack(pl.DataFrame({"ImageID": ["C"], "LabelName": ["z"], "rank": [3]}))
    # z (the rarest) takes C, which holds a y too; x then takes A, the first in draw order
    assert _quota(rare, ranks, 1).to_list() == [True, False, True]


def test_quotas_with_overlapping_classes_meet_each_class_where_possible(indexed, tmp_path):
    selection = select(*indexed, SelectionSpec(classes=("Vehicle", "Dog"), per_class=1), SUBSETS, tmp_path)
    for subset, mid, available, selected in selection.counts:
        assert selected >= min(1, available), (subset, mid)
    train = pl.read_parquet(selection.images.url).filter(pl.col("subset") == "train").height
    assert train < sum(1 for s, *_ in selection.counts if s == "train")  # shared images filled several quotas


def test_the_seed_fixes_the_draw(indexed, tmp_path):
    draws = [chosen(indexed, tmp_path / str(seed), max_images=4, seed=seed) for seed in (0, 0, 1, 2, 3)]
    assert draws[0] == draws[1] and all(len(d["train"]) == 4 for d in draws)
    assert len({tuple(d["train"]) for d in draws}) > 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("t01\nt02\n\n# a comment\nv01\n", {"train": ["t01", "t02"], "validation": ["v01"]}),
        (
            "train/t01\nvalidation/t02\nvalidation/v01\n",
            {"train": ["t01"], "validation": ["v01"]},
        ),  # t02 is no validation image
        ("Subset,ImageID\ntrain,t03\nvalidation,v04\n", {"train": ["t03"], "validation": ["v04"]}),
        ("ImageID,Note\nt04,x\n", {"train": ["t04"], "validation": []}),
    ],
)
def test_image_id_lists(indexed, tmp_path, text, expected):
    listed = tmp_path / "ids.txt"
    listed.write_text(text)
    assert chosen(indexed, tmp_path, image_ids=str(listed)) == expected


def test_image_id_list_intersects_the_class_selection(indexed, tmp_path):
    fsspec.filesystem("memory").pipe("/ids/list.txt", b"t01\nt03\nt06\n")
    assert chosen(indexed, tmp_path, classes=("Car",), image_ids="memory://ids/list.txt") == {
        "train": ["t01"],
        "validation": [],
    }
    assert read_image_ids("memory://ids/list.txt").height == 3


def test_parameters_need_classes_where_they_refer_to_them():
    with pytest.raises(ValidationError, match="need classes"):
        SelectionSpec(per_class=3)


# The flow, through a real Prefect API


def _zip_rows(path: Path, name: str) -> list[dict[str, str]]:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        return list(csv.DictReader(io.StringIO(archive.read(name).decode()))) if name in names else []


def _members(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return sorted(archive.namelist())


@pytest.mark.usefixtures("prefect_api")
def test_only_matching_export_keeps_the_selected_classes_and_accounts_for_the_rest(dataset, tmp_path):
    options = ExportOptions(
        dest=str(tmp_path),
        name="veh",
        selection=SelectionSpec(
            classes=["Vehicle"], exclude_classes=["Rocket"], only_matching=True, drop_boxes=[BoxFlag.group_of]
        ),
    )
    report = export_open_images(source=str(dataset), options=options)
    zipped = tmp_path / "veh.zip"
    kept = {"/m/veh", "/m/car", "/m/toycar", "/m/truck", "/m/boat"}
    boxes = _zip_rows(zipped, "annotations/train-annotations-bbox.csv")
    assert {b["LabelName"] for b in boxes} <= kept and not any(b["IsGroupOf"] == "1" for b in boxes)
    labels = _zip_rows(zipped, "annotations/train-annotations-human-imagelabels.csv")
    assert ("t08", "/m/boat", "0") in {
        (r["ImageID"], r["LabelName"], r["Confidence"]) for r in labels
    }  # a verified negative
    assert [r["ImageID"] for r in _zip_rows(zipped, "annotations/validation-images-with-rotation.csv")] == [
        "v01",
        "v02",
        "v04",
    ]
    with zipfile.ZipFile(zipped) as archive:
        classes = dict(
            line.split(",") for line in archive.read("annotations/class-descriptions.csv").decode().splitlines()
        )
        tree = json.loads(archive.read("annotations/bbox_labels_600_hierarchy.json"))
    assert set(classes) == kept | {"/m/toy"}  # Toy is on the path to Toy car in the pruned hierarchy
    assert Hierarchy.from_tree(tree).nodes() == kept | {"/m/toy", "/m/0bl9f"}
    assert not any(m.startswith("images/train/t04") or m.startswith("masks/validation/") for m in _members(zipped))
    for row in report["files"]:
        assert row["rows_in"] == sum(row["published"].values()) + row["rejected"] + row["not_selected"]
    section = report["selection"]
    assert section["requested"] == [{"entry": "Vehicle", "mid": "/m/veh", "name": "Vehicle"}]
    assert {(r["subset"], r["mid"]): r["boxes"] for r in section["classes"]}[("train", "/m/car")] == 2
    assert (
        "## Selection" in (tmp_path / "veh.report.md").read_text()
        and "<h2>Selection</h2>" in (tmp_path / "veh.report.html").read_text()
    )
    assert "veh.report/selection.png" in [p["file"] for p in report["pictures"]["files"]]


@pytest.mark.slow  # two exports
@pytest.mark.usefixtures("prefect_api")
def test_image_id_list_beside_the_zip_reproduces_the_export(dataset, tmp_path):
    options = ExportOptions(
        dest=str(tmp_path / "a"), name="ds", selection=SelectionSpec(classes=["Vehicle", "Dog"], per_class=1, seed=7)
    )
    first = export_open_images(source=str(dataset), options=options)
    listed = tmp_path / "a" / "ds.image-ids.csv"
    assert listed.read_text().splitlines()[0] == "Subset,ImageID"
    assert first["selection"]["image_ids"]["images"] == len(listed.read_text().splitlines()) - 1
    options = ExportOptions(dest=str(tmp_path / "b"), name="ds", selection=SelectionSpec(image_ids=str(listed)))
    export_open_images(source=str(dataset), options=options)
    assert _members(tmp_path / "a" / "ds.zip") == _members(tmp_path / "b" / "ds.zip")
    for member in [
        m for m in _members(tmp_path / "a" / "ds.zip") if m.endswith(".csv") and "class-descriptions" not in m
    ]:
        assert _zip_rows(tmp_path / "a" / "ds.zip", member) == _zip_rows(tmp_path / "b" / "ds.zip", member), member


@pytest.mark.usefixtures("prefect_api")
def test_merge_relabels_subclasses_to_the_requested_class(dataset, tmp_path):
    options = ExportOptions(
        dest=str(tmp_path),
        name="m",
        selection=SelectionSpec(classes=["Vehicle"], merge_subclasses=True, only_matching=True),
    )
    report = export_open_images(source=str(dataset), options=options)
    boxes = _zip_rows(tmp_path / "m.zip", "annotations/train-annotations-bbox.csv")
    labels = _zip_rows(tmp_path / "m.zip", "annotations/train-annotations-human-imagelabels.csv")
    assert {b["LabelName"] for b in boxes} == {"/m/veh"}
    assert {(r["LabelName"], r["Confidence"]) for r in labels} == {
        ("/m/veh", "1"),
        ("/m/veh", "0"),
        ("/m/boat", "0"),
    }  # negatives keep their class
    assert [r["ImageID"] for r in labels if r["ImageID"] == "t08" and r["Confidence"] == "1"] == [
        "t08"
    ]  # Truck and Car: one Vehicle
    assert all(
        row["rows_in"] == sum(row["published"].values()) + row["rejected"] + row["not_selected"]
        for row in report["files"]
    )


class CountingFileSystem(MemoryFileSystem):
    """fsspec's memory file system under its own protocol, remembering every file it reads."""

    protocol = ("countingmem",)
    opened: list[str] = []

    @classmethod
    def _strip_protocol(cls, path):
        return super()._strip_protocol(
            "memory://" + path[len("countingmem://") :] if path.startswith("countingmem://") else path
        )

    def _open(self, path, *args, **kwargs):
        CountingFileSystem.opened.append(str(path))
        return super()._open(path, *args, **kwargs)

    def cat_file(self, path, *args, **kwargs):
        CountingFileSystem.opened.append(str(path))
        return super().cat_file(path, *args, **kwargs)


@pytest.mark.usefixtures("prefect_api")
def test_media_of_unselected_images_are_never_read(dataset, tmp_path):
    fsspec.register_implementation("countingmem", CountingFileSystem, clobber=True)
    CountingFileSystem().put(str(dataset), f"/{tmp_path.name}", recursive=True)
    CountingFileSystem.opened.clear()
    options = ExportOptions(
        dest=str(tmp_path), name="dogs", selection=SelectionSpec(classes=["Dog"], only_matching=True)
    )
    export_open_images(source=f"countingmem://{tmp_path.name}", options=options)
    media = {Path(p).name for p in CountingFileSystem.opened if "/images/" in p or "/masks/" in p}
    assert media == {"t01.jpg", "t06.jpg", "t10.jpg", "v03.jpg", "v03_dog_b0.png"}


@pytest.mark.usefixtures("prefect_api")
def test_cli_flags_and_the_dry_run(dataset, tmp_path, capsys):
    assert (
        main(
            [
                "inspect",
                str(dataset),
                "--charts-dir",
                str(tmp_path / "charts"),
                "--classes",
                "vehicle",
                "--exclude-classes",
                "Rocket",
                "--per-class",
                "1",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "vehicle -> /m/veh Vehicle" in printed and "quota not met" not in printed.split("Car")[0]
    assert (
        main(
            [
                "export",
                str(dataset),
                str(tmp_path),
                "--name",
                "cli",
                "--classes",
                "Dog",
                "--max-images",
                "1",
                "--drop-boxes",
                "depiction,inside",
            ]
        )
        == 0
    )
    train, validation = [m for m in _members(tmp_path / "cli.zip") if m.startswith("images/")]
    assert (
        train in ("images/train/t01.jpg", "images/train/t06.jpg") and validation == "images/validation/v03.jpg"
    )  # t10: depiction
    assert main(["export", str(dataset), str(tmp_path), "--classes", "Dgo"]) == 2
    assert main(["export", str(dataset), str(tmp_path), "--classes", "Dog", "--drop-boxes", "blurry"]) == 2
