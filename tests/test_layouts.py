"""Layout variants of format-notes.md: which files are found, with which subsets and headers."""

from __future__ import annotations

import shutil
from pathlib import Path

import fsspec
import pytest

from openimages_etl.format.layout import _classify_table, discover
from openimages_etl.format.validation import build_keys
from openimages_etl.schemas.kinds import TABLES, TableKind
from openimages_etl.storage.locations import ARCHIVE_KINDS, DatasetRoot, find_files, stage_source
from openimages_etl.storage.objects import ARCHIVE_PATTERNS, matches

from .helpers import make_archive, validate


def keys_of(folder: Path | str, work: Path):
    layout = discover(DatasetRoot(str(folder)), work / "index")
    return layout, build_keys(layout, work)


def _merge_image_lists(folder: Path, target: str) -> None:
    """All splits in one list with a Subset column, as the official image_ids_and_rotation.csv."""
    lists = sorted(folder.glob("*-images-boxable-with-rotation.csv"))
    header, *rows = lists[0].read_text().splitlines()
    for extra in lists[1:]:
        rows += extra.read_text().splitlines()[1:]
        extra.unlink()
    lists[0].unlink()
    (folder / target).write_text("\n".join([header, *rows]) + "\n")


def test_official_single_image_list_takes_subsets_from_its_column(official_dir, tmp_path):
    _merge_image_lists(official_dir, "image_ids_and_rotation.csv")
    _, keys = keys_of(official_dir, tmp_path)
    assert keys.images_per_subset == {"train": 6, "validation": 3}
    assert validate(official_dir, tmp_path / "v") == []


def test_cvat_page_image_list_name_is_accepted_on_input(cvat_dir, tmp_path):
    for path in (cvat_dir / "annotations").glob("*-images-with-rotation.csv"):
        path.rename(path.with_name(path.name.replace("-images-with-rotation", "-image_ids_and_rotation")))
    layout, keys = keys_of(cvat_dir, tmp_path)
    assert keys.images_per_subset == {"train": 6, "validation": 3}


@pytest.mark.parametrize(
    ("names", "chosen", "header"),
    [
        (["class-descriptions-boxable.csv"], "class-descriptions-boxable.csv", False),
        (["class-descriptions.csv", "class-descriptions-boxable.csv"], "class-descriptions-boxable.csv", False),
        (["oidv6-class-descriptions.csv", "class-descriptions-boxable.csv"], "oidv6-class-descriptions.csv", True),
    ],
)
def test_class_file_precedence_and_header_detection(cvat_dir, tmp_path, names, chosen, header):
    original = cvat_dir / "annotations" / "class-descriptions.csv"
    body = original.read_text()
    original.unlink()
    for name in names:
        (cvat_dir / "annotations" / name).write_text(
            ("LabelName,DisplayName\n" if name.startswith("oidv") else "") + body
        )
    layout = discover(DatasetRoot(str(cvat_dir)), tmp_path)
    (classes,) = layout.of_kind("classes")
    assert (Path(classes.path).name, classes.header) == (chosen, header)
    assert validate(cvat_dir, tmp_path / "v") == []


def test_annotation_files_at_the_archive_root(cvat_dir, tmp_path):
    for path in (cvat_dir / "annotations").iterdir():
        shutil.move(path, cvat_dir / path.name)
    (cvat_dir / "annotations").rmdir()
    assert validate(cvat_dir, tmp_path) == []


def test_without_image_lists_every_image_file_is_an_item(cvat_dir, tmp_path):
    for path in (cvat_dir / "annotations").glob("*-images-with-rotation.csv"):
        path.unlink()
    _, keys = keys_of(cvat_dir, tmp_path)
    assert keys.images_per_subset == {"train": 6, "validation": 3}


def test_memory_filesystem_source(cvat_dir, tmp_path):
    memory = fsspec.filesystem("memory")
    memory.put(str(cvat_dir), "/ds", recursive=True)
    try:
        layout, keys = keys_of("memory://ds", tmp_path)
        assert len(layout.tables) == 9 and keys.images_per_subset == {"train": 6, "validation": 3}
    finally:
        memory.rm("/ds", recursive=True)


@pytest.mark.parametrize("suffix", sorted(ARCHIVE_KINDS))
def test_every_archive_that_fetch_opens_is_one_the_triggers_pick_up(cvat_dir, tmp_path, suffix):
    """The watcher, the relay and the scheduled flow (ARCHIVE_PATTERNS) announce exactly what fetch-source opens."""
    archive = make_archive(cvat_dir, suffix.removeprefix("."))
    assert matches(str(archive), ARCHIVE_PATTERNS)
    _, keys = keys_of(stage_source(str(archive), {}, tmp_path / "work").url, tmp_path)
    assert keys.images_per_subset == {"train": 6, "validation": 3}


@pytest.mark.parametrize("kind", list(TableKind))
def test_each_exported_file_name_reads_back_as_its_kind(kind):
    subset = None if kind == TableKind.classes else "train-2"
    assert _classify_table(TABLES[kind].output_name(subset or "")) == (kind, subset)


def test_a_folder_linking_to_itself_is_listed_once(cvat_dir):
    before = sorted(find_files(fsspec.filesystem("file"), str(cvat_dir)))
    (cvat_dir / "images" / "loop").symlink_to(cvat_dir, target_is_directory=True)
    (cvat_dir / "images" / "first.jpg").symlink_to(before[-1])
    after = sorted(find_files(fsspec.filesystem("file"), str(cvat_dir)))
    assert after == sorted([*before, str(cvat_dir / "images" / "first.jpg")])
