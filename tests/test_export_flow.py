"""The export flow end to end on a real Prefect API: layouts, archives, options, failures."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from openimages_etl.cli import main
from openimages_etl.config import ImageSize, OnInvalid, ResizeMethod
from openimages_etl.errors import InvalidDataError, UsageError
from openimages_etl.flows import export_open_images
from openimages_etl.options import ExportOptions

from .helpers import make_archive

pytestmark = pytest.mark.usefixtures("prefect_api")


def _members(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


def _assert_masks_are_normalised_to_the_image_size(path: Path) -> None:
    """Every mask is an 8-bit 0/1 PNG at its image's size in images.meta."""
    with zipfile.ZipFile(path) as archive:
        meta = dict(
            (line.split()[0], line.split()[1:])
            for line in archive.read("annotations/images.meta").decode().splitlines()[1:]
        )
        for member in (m for m in archive.namelist() if m.startswith("masks/")):
            with archive.open(member) as handle, Image.open(handle) as mask:
                image_id = Path(member).name.split("_")[0]
                assert mask.mode == "L"
                assert [str(mask.height), str(mask.width)] == meta[image_id]
                assert set(np.unique(np.asarray(mask))) == {0, 1}


# The fast loop keeps each layout and the two commonest packings once; tar: also test_hostile_inputs.
@pytest.mark.parametrize(
    ("layout", "packing"),
    [
        ("cvat", "zip"),
        ("official", "folder"),
        pytest.param("cvat", "folder", marks=pytest.mark.slow),
        pytest.param("official", "zip", marks=pytest.mark.slow),
        *(
            pytest.param(layout, packing, marks=pytest.mark.slow)
            for layout in ("cvat", "official")
            for packing in ("tar", "tar.gz")
        ),
    ],
)
def test_every_layout_and_packing_exports_the_same_dataset(request, layout, packing, tmp_path):
    folder = request.getfixturevalue(f"{layout}_dir")
    source = folder if packing == "folder" else make_archive(folder, packing)
    report = export_open_images(source=str(source), options=ExportOptions(dest=str(tmp_path / "out"), name="ds"))
    assert report["status"] == "published"
    assert report["subsets"] == {
        "train": {"images": 6, "boxes": 12, "labels": 12, "masks": 6},
        "validation": {"images": 3, "boxes": 6, "labels": 6, "masks": 3},
    }
    members = _members(tmp_path / "out" / "ds.zip")
    assert "annotations/class-descriptions.csv" in members
    assert "annotations/train-images-with-rotation.csv" in members
    assert "annotations/images.meta" in members
    assert sum(m.startswith("images/train/") for m in members) == 6
    assert sum(m.startswith("masks/validation/") for m in members) == 3
    saved = json.loads((tmp_path / "out" / "ds.report.json").read_text())
    assert saved["status"] == "published" and saved["output"].endswith("ds.zip")
    _assert_masks_are_normalised_to_the_image_size(tmp_path / "out" / "ds.zip")


@pytest.mark.parametrize(
    "method", [ResizeMethod.fast, pytest.param(ResizeMethod.tfds, marks=pytest.mark.slow)]
)  # tfds's pixels: test_media
def test_resizing_300k_follows_the_tfds_rule(cvat_dir, tmp_path, method):
    options = ExportOptions(dest=str(tmp_path), name="small", image_size=ImageSize.px300k, resize_method=method)
    report = export_open_images(source=str(cvat_dir), options=options)
    assert report["image_size"] == "300k" and report["resize_method"] == method.value
    with zipfile.ZipFile(tmp_path / "small.zip") as archive:
        meta = dict(
            line.split(" ", 1)
            for line in archive.read("annotations/images.meta").decode().splitlines()
            if not line.startswith("#")
        )
        for member in (m for m in archive.namelist() if m.startswith("images/")):
            with archive.open(member) as handle, Image.open(handle) as image:
                assert image.format == "JPEG"
                assert image.width * image.height <= 300_000 * 1.01
                assert meta[Path(member).stem] == f"{image.height} {image.width}"


def test_subsets_and_per_subset_zips(cvat_dir, tmp_path):
    options = ExportOptions(dest=str(tmp_path), name="ds", subsets=["validation"], per_subset=True)
    report = export_open_images(source=str(cvat_dir), options=options)
    assert list(report["subsets"]) == ["validation"]
    assert (tmp_path / "ds-validation.zip").exists()
    assert not any(m.startswith("images/train/") for m in _members(tmp_path / "ds.zip"))
    train_rows = {f["file"]: f["not_selected"] for f in report["files"]}
    assert train_rows["annotations/train-annotations-bbox.csv"] == 12


def _break_a_box(folder: Path) -> Path:
    bbox = folder / "annotations" / "train-annotations-bbox.csv"
    lines = bbox.read_text().splitlines()
    fields = lines[2].split(",")
    fields[4], fields[2] = "1.5", "/m/undefined"  # XMin out of range, label not in class descriptions
    lines[2] = ",".join(fields)
    bbox.write_text("\n".join(lines) + "\n")
    return bbox


def test_invalid_rows_fail_the_run_and_publish_nothing(cvat_dir, tmp_path):
    _break_a_box(cvat_dir)
    with pytest.raises(InvalidDataError) as caught:
        export_open_images(source=str(cvat_dir), options=ExportOptions(dest=str(tmp_path), name="ds"))
    found = {(f.file, f.row, f.column, f.check) for f in caught.value.failures}
    assert ("annotations/train-annotations-bbox.csv", 3, "XMin", "less_than_or_equal_to(1.0)") in found
    assert (
        "annotations/train-annotations-bbox.csv",
        3,
        "LabelName",
        "LabelName defined in class descriptions",
    ) in found
    assert not (tmp_path / "ds.zip").exists()
    report = json.loads((tmp_path / "ds.report.json").read_text())
    assert report["status"] == "failed" and report["output"] is None and report["errors_total"] >= 2


def test_drop_leaves_invalid_rows_out_and_accounts_for_them(cvat_dir, tmp_path):
    _break_a_box(cvat_dir)
    options = ExportOptions(dest=str(tmp_path), name="ds", on_invalid=OnInvalid.drop)
    report = export_open_images(source=str(cvat_dir), options=options)
    assert report["subsets"]["train"]["boxes"] == 11
    assert report["rejected"] == {"annotations/train-annotations-bbox.csv": 1}
    for row in report["files"]:
        assert row["rows_in"] == sum(row["published"].values()) + row["rejected"] + row["not_selected"]


@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        (["validate", "{good}"], 0),
        (["validate", "{bad}"], 1),
        (["validate", "{missing}"], 2),
        pytest.param(["export", "{good}", "{out}"], 0, marks=pytest.mark.slow),  # fast: test_report_visuals' export
        (["export", "{bad}", "{out}"], 1),
        (["export", "{good}", "{out}", "--subsets", "nosuch"], 2),
    ],
)
def test_cli_exit_codes(sample_dirs, tmp_path, arguments, code, capsys):
    _break_a_box(Path(shutil.copytree(sample_dirs["cvat"], tmp_path / "bad")))
    bad = make_archive(tmp_path / "bad", "zip")
    paths = {
        "good": str(sample_dirs["cvat"]),
        "bad": str(bad),
        "missing": str(tmp_path / "nope.zip"),
        "out": str(tmp_path / "out"),
    }
    assert main([a.format(**paths) for a in arguments]) == code
    if code == 1:
        assert "train-annotations-bbox.csv:3 column XMin" in capsys.readouterr().err
    if arguments[0] == "export" and code != 0:  # nothing published; invalid data (and only it) leaves a failed report
        assert not list((tmp_path / "out").glob("*.zip"))
        reports = [json.loads(p.read_text())["status"] for p in (tmp_path / "out").glob("*.report.json")]
        assert reports == (["failed"] if code == 1 else [])


def test_annotation_only_source_exports_annotations_and_sizes(cvat_dir, tmp_path):
    """No images at all (CVAT's import upload): sizes come from images.meta, masks are sized by it."""
    shutil.rmtree(cvat_dir / "images")
    report = export_open_images(source=str(cvat_dir), options=ExportOptions(dest=str(tmp_path), name="ann"))
    assert report["subsets"]["train"] == {"images": 6, "boxes": 12, "labels": 12, "masks": 6}
    members = _members(tmp_path / "ann.zip")
    assert not any(m.startswith("images/") for m in members)
    assert "annotations/images.meta" in members and sum(m.startswith("masks/") for m in members) == 9


def test_the_log_says_where_and_a_deployment_run_refuses_a_relative_path(cvat_dir, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    options = ExportOptions(dest="out", name="ds")
    export_open_images(source="cvat", options=options)  # from a shell: relative to where the user is
    assert f"Exporting {tmp_path / 'cvat'} to {tmp_path / 'out' / 'ds.zip'}" in caplog.text
    monkeypatch.setenv("PREFECT__RUNTIME__DEPLOYMENT__ID", "00000000-0000-0000-0000-00000000f0a1")  # as in a served run
    with pytest.raises(
        UsageError,
        match=rf"dest 'ui-form-300k' is a relative path: .*\({tmp_path}\)\. "
        rf"Give an absolute path \(such as {tmp_path / 'ui-form-300k'}\) or a URL",
    ):
        export_open_images(source=str(cvat_dir), options=ExportOptions(dest="ui-form-300k"))
    assert not (tmp_path / "ui-form-300k").exists()
