"""The hostile corpus through the readers: each case gets its clear error, nothing lands outside the work dir."""

from __future__ import annotations

import io
import json
import shutil
import time
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from openimages_etl.cli import main
from openimages_etl.config import Limits, ResizeMethod
from openimages_etl.errors import SourceError, UnreadableFileError, UnsafeSourceError, UsageError
from openimages_etl.format import tables
from openimages_etl.format.layout import discover
from openimages_etl.format.tables import iter_batches
from openimages_etl.format.validation import build_keys, validate_table
from openimages_etl.media import convert
from openimages_etl.media.images import MediaError, convert_image, convert_mask
from openimages_etl.storage.locations import (
    SAFE_ID,
    SAFE_NAME,
    DatasetRoot,
    plain_file_name,
    safe_id,
    safe_name,
    stage_source,
)

from . import hostile
from .helpers import ANN, make_archive, validate


def _stage(archive: Path, work: Path) -> DatasetRoot:
    return stage_source(str(archive), {}, work, Limits.from_env())  # the edge: read as a run reads them


def _nothing_outside(tmp_path: Path, work: Path) -> None:
    """No file of the archive escaped: everything the stage wrote is under `work`."""
    escaped = [p for p in tmp_path.parent.rglob("evil*") if work not in p.parents]
    assert not escaped


@pytest.mark.parametrize("case", sorted(hostile.UNSAFE_ARCHIVES))
def test_unsafe_archives_are_refused(case, tmp_path):
    archive = hostile.UNSAFE_ARCHIVES[case](tmp_path)
    with pytest.raises(UnsafeSourceError):
        _stage(archive, tmp_path / "work")
    _nothing_outside(tmp_path, tmp_path / "work")


@pytest.mark.parametrize("case", sorted(hostile.CAPPED_ARCHIVES))
def test_archive_caps_apply_and_can_be_raised(case, tmp_path, monkeypatch):
    build, env = hostile.CAPPED_ARCHIVES[case]
    archive = build(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(UnsafeSourceError, match="OPENIMAGES_ETL_MAX_"):
        _stage(archive, tmp_path / "work")
    for key in env:
        monkeypatch.setenv(key, "100000000")
    _stage(archive, tmp_path / "work2")


@pytest.mark.parametrize("case", sorted(hostile.UNREADABLE_ARCHIVES))
def test_unreadable_archives_are_clear_source_errors(case, tmp_path):
    archive = hostile.UNREADABLE_ARCHIVES[case](tmp_path)
    with pytest.raises(SourceError) as caught:
        _stage(archive, tmp_path / "work")
    assert str(archive) in str(caught.value)


def test_a_zip_whose_directory_lies_is_read_no_further_than_it_says(tmp_path):
    root = _stage(hostile.lying_zip(tmp_path), tmp_path / "work")  # the directory alone looks fine
    with pytest.raises(SourceError, match="corrupt archive member"):
        discover(root, tmp_path / "index")  # its local copy for the CSV reader stops at the lie


def test_a_nested_archive_is_ignored_and_a_bomb_mask_shard_refused(official_dir, tmp_path):
    shutil.copy(hostile._zip(tmp_path / "inner.zip", [("x.csv", b"a,b\n")]), official_dir / "extra.zip")
    layout = discover(DatasetRoot(str(official_dir)), tmp_path / "index")
    assert "extra.zip" in layout.ignored
    shard = next(official_dir.glob("*-masks-*.zip"))
    hostile._zip(shard, [("0_m_0.png", hostile.ZEROS)])
    with pytest.raises(UnsafeSourceError, match="zip bomb"):
        discover(DatasetRoot(str(official_dir)), tmp_path / "index2")


@pytest.mark.parametrize("case", sorted(hostile.CSV_CASES))
def test_csv_reader_accepts_the_dialects_and_locates_what_it_refuses(case, tmp_path):
    data, expected = hostile.CSV_CASES[case]
    path = tmp_path / "train-annotations-human-imagelabels.csv"
    path.write_bytes(data)
    folder = tmp_path
    (folder / "class-descriptions.csv").write_text("/m/1,One\n")
    try:
        layout = discover(DatasetRoot(str(folder)), tmp_path / "index")
        table = next(t for t in layout.tables if t.kind == "labels")
        frames = list(iter_batches(table))
    except UnreadableFileError as exc:
        assert expected == ("unreadable", exc.row), f"{case}: {exc}"
        assert exc.file == path.name
        return
    assert sum(f.height for f in frames) == expected
    if frames and expected:
        assert frames[0].get_column("ImageID").to_list()[:2] == ["a1", "a2"]
        assert frames[0].get_column("__line").to_list()[:2] == [2, 3]


@pytest.mark.parametrize("chunk", [tables.RAW_CHUNK, 2])  # 2 bytes: every sequence of several bytes is cut by a chunk
@pytest.mark.parametrize("case", sorted(hostile.NOT_UTF8_CASES))
def test_bytes_that_are_not_utf8_fail_their_cell_and_nothing_else(case, chunk, cvat_dir, tmp_path, monkeypatch):
    build, reported = hostile.NOT_UTF8_CASES[case]
    labels = cvat_dir / "annotations" / "train-annotations-human-imagelabels.csv"
    labels.write_bytes(build(labels.read_bytes()))
    monkeypatch.setattr(tables, "RAW_CHUNK", chunk)
    layout = discover(DatasetRoot(str(cvat_dir)), tmp_path / "index")
    table = next(t for t in layout.tables if t.path == f"annotations/{labels.name}")
    check = validate_table(layout, table, build_keys(layout, tmp_path), tmp_path)
    assert check.rows == 12
    assert {
        (f.row, f.column) for f in check.failures.samples
    } == reported  # not also each rule the mangled value breaks
    assert {f.check for f in check.failures.samples} <= {tables.NOT_UTF8_CHECK}


@pytest.mark.usefixtures("prefect_api")
def test_a_byte_that_is_not_utf8_fails_its_row_and_drop_publishes_the_others(cvat_dir, tmp_path, capsys):
    bbox = cvat_dir / "annotations" / "train-annotations-bbox.csv"
    bbox.write_bytes(hostile.edit_cells(bbox.read_bytes(), {(3, "Source"): b"xcl\xffick"}))
    archive, out = make_archive(cvat_dir, "zip"), tmp_path / "out"
    assert main(["export", str(archive), str(out), "--name", "ds"]) == 1
    assert "annotations/train-annotations-bbox.csv:3 column Source: is UTF-8 text" in capsys.readouterr().err
    assert main(["export", str(archive), str(out), "--name", "ds", "--on-invalid", "drop"]) == 0
    report = json.loads((out / "ds.report.json").read_text())
    assert report["rejected"] == {"annotations/train-annotations-bbox.csv": 1}
    with zipfile.ZipFile(out / "ds.zip") as export:
        rows = export.read("annotations/train-annotations-bbox.csv").decode().splitlines()  # strict: UTF-8 throughout
    assert len(rows) == 1 + 11


@pytest.mark.slow  # ten runs, to meet the race
@pytest.mark.usefixtures("prefect_api")
@pytest.mark.parametrize("command", ["validate", "export"])
def test_an_unreadable_csv_gives_one_exit_code_on_every_run(command, cvat_dir, tmp_path, monkeypatch, capsys):
    """The CSV fails while images still convert: the run waits for its task runs, so its work folder goes whole
    and the exit code is the CSV's, every time (it had been 2 or 4 when cleanup met a task still writing)."""
    bbox = cvat_dir / "annotations" / "train-annotations-bbox.csv"
    bbox.write_bytes(hostile.edit_cells(bbox.read_bytes(), {(4, "Source"): b'"xclick'}))
    convert_batch = convert._convert_image_batch

    def slow_batch(*args, **kwargs):  # the fault: conversion is still under way when validation fails
        time.sleep(1)
        return convert_batch(*args, **kwargs)

    monkeypatch.setattr(convert, "_convert_image_batch", slow_batch)
    work = tmp_path / "work"
    work.mkdir()
    arguments = [command, str(cvat_dir)] + ([str(tmp_path / "out"), "--work", str(work)] if command == "export" else [])
    codes = []
    for _ in range(5):
        codes.append(main(arguments))
        assert list(work.iterdir()) == []
    assert codes == [2] * 5
    assert capsys.readouterr().err.count("openimages-etl: annotations/train-annotations-bbox.csv:4:") == 5


@pytest.mark.parametrize("method", list(ResizeMethod))
@pytest.mark.parametrize("case", sorted(hostile.IMAGE_CASES))
def test_images(case, method):
    build, target, expected = hostile.IMAGE_CASES[case]
    if expected == "error":
        with pytest.raises(MediaError):
            convert_image(build(), target, method=method)
        return
    data, _, height, width = convert_image(build(), target, method=method)
    assert (height, width) == expected
    if target:
        with Image.open(io.BytesIO(data)) as out:
            assert out.mode == "RGB" and (out.height, out.width) == expected
            assert out.getpixel((1, 1)) != (255, 255, 255)  # 16-bit grey scaled, not clipped to white


@pytest.mark.parametrize("case", sorted(hostile.MASK_CASES))
def test_masks(case):
    build, expected = hostile.MASK_CASES[case]
    if expected == "error":
        with pytest.raises(MediaError):
            convert_mask(build(), (8, 8))
    else:
        assert convert_mask(build(), (8, 8)).startswith(b"\x89PNG")


ESCAPES = ["../../../escaped", "/tmp/escaped", "a/../../escaped"]


@pytest.mark.parametrize("value", [*ESCAPES, "bad\0name", "C:\\x", "..", ".hidden", "", "a\\..\\b"])
def test_the_guard_on_values_that_become_file_names(value):
    with pytest.raises(UnsafeSourceError):
        safe_name(value, "ImageID")
    with pytest.raises(UsageError):
        plain_file_name(value, "export name")


@pytest.mark.parametrize(
    "value",
    [
        *ESCAPES,
        "../x",
        "/abs",
        "a/../../b",
        "dir/",
        "a//b",
        "a/./b",
        ".hidden",
        "dir/.hidden",
        "a\\b",
        "C:\\x",
        "bad\0name",
        "bad\nname",
        "new\n",
        "",
        "\u009bx",
    ],
)
def test_the_guard_on_image_ids(value):
    """An ImageID may hold spaces and sub-folders (CVAT frame names), never a way out of its subset's folder."""
    with pytest.raises(UnsafeSourceError, match="ImageID"):
        safe_id(value)


def test_image_ids_that_try_to_escape_are_row_errors(cvat_dir, tmp_path):
    path = cvat_dir / ANN / "train-images-with-rotation.csv"
    lines = path.read_text().splitlines()
    hostile_rows = {2: "../x", 3: "/abs", 4: "a/../../b"}
    for line, value in hostile_rows.items():
        lines[line - 1] = value + lines[line - 1][lines[line - 1].index(",") :]
    path.write_text("\n".join(lines) + "\n")
    found = {
        (f.row, f.value)
        for f in validate(cvat_dir, tmp_path / "work")
        if (f.file, f.column, f.check)
        == (f"{ANN}/train-images-with-rotation.csv", "ImageID", f"str_matches('{SAFE_ID}')")
    }
    assert found == {(line, value) for line, value in hostile_rows.items()}


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_values_that_try_to_escape_are_rejected_and_nothing_is_written_outside(cvat_dir, tmp_path):
    images = cvat_dir / "annotations" / "train-images-with-rotation.csv"
    lines = images.read_text().splitlines()
    lines[1] = lines[1].replace(",train,", f",{ESCAPES[0]},", 1)
    lines[2] = ESCAPES[1] + lines[2][lines[2].index(",") :]
    images.write_text("\n".join(lines) + "\n")
    segments = cvat_dir / "annotations" / "train-annotations-object-segmentation.csv"
    lines = segments.read_text().splitlines()
    lines[1] = ESCAPES[2] + lines[1][lines[1].index(",") :]
    segments.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert main(["export", str(make_archive(cvat_dir, "zip")), str(out), "--name", "ds"]) == 1
    assert main(["export", str(cvat_dir), str(out), "--name", "ds", "--on-invalid", "drop"]) == 0
    report = json.loads((out / "ds.report.json").read_text())
    checks = {(e["column"], e["check"]) for e in report["errors"]}
    assert ("MaskPath", f"str_matches('{SAFE_NAME}')") in checks
    assert any(c == "Subset" for c, _ in checks) and any(c == "ImageID" for c, _ in checks)
    assert not [p for p in Path("/tmp").glob("escaped*")] and not list(tmp_path.parent.rglob("escaped*"))
    for row in report["files"]:
        assert row["rows_in"] == sum(row["published"].values()) + row["rejected"] + row["not_selected"]


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.parametrize(("case", "code"), [("zip-slip", 2), ("tar-symlink", 2), ("zip-bomb-ratio", 2)])
def test_cli_exit_code_for_unsafe_sources(case, code, tmp_path, capsys):
    archive = hostile.UNSAFE_ARCHIVES[case](tmp_path)
    assert main(["export", str(archive), str(tmp_path / "out")]) == code
    assert "openimages-etl:" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
