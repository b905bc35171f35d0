"""The run report's pictures: boxes, masks and rotations land on the right pixels; files, HTML, failed runs, inspect."""

from __future__ import annotations

import base64
import io
import json
import re
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from openimages_etl.cli import main
from openimages_etl.errors import InvalidDataError
from openimages_etl.flows import export_open_images  # imports Prefect now: its console handler keeps this stderr
from openimages_etl.options import ExportOptions
from openimages_etl.report.charts import DPI
from openimages_etl.report.pictures import export_visuals
from openimages_etl.report.visuals import CAPTION, GAP, HEADER, MASK_ALPHA, TILE, class_colour, tile_origin

LABEL = "/m/0k4j"
GREY, BLUE = (128, 128, 128), (0, 0, 255)


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _synthetic_export(path: Path, mask_box: bool = True) -> Path:
    """An exported zip with two grey 480x240 images: `a...` with a box and a mask over its right half,
    `b...` stored turned (Rotation 90) with a blue square and a box in its stored top-left corner.
    Without `mask_box`, `a...` has the mask only, its box columns empty (as Datumaro writes a polygon's mask)."""
    upright, turned = Image.new("RGB", (480, 240), GREY), Image.new("RGB", (480, 240), GREY)
    turned.paste(BLUE, (0, 0, 120, 120))
    mask = np.zeros((240, 480), np.uint8)
    mask[:, 240:] = 1
    rows = {
        "class-descriptions.csv": f"{LABEL},Car\r\n",
        "train-images-with-rotation.csv": "ImageID,Subset,Rotation\r\naaaa,train,0.0\r\nbbbb,train,90.0\r\n",
        "train-annotations-bbox.csv": "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,"
        "IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside\r\n"
        + (f"aaaa,xclick,{LABEL},1,0.25,0.75,0.25,0.75,0,0,0,0,0\r\n" if mask_box else "")
        + f"bbbb,xclick,{LABEL},1,0.0,0.25,0.0,0.5,0,0,0,0,0\r\n",
        "train-annotations-object-segmentation.csv": "MaskPath,ImageID,LabelName,BoxID,"
        "BoxXMin,BoxXMax,BoxYMin,BoxYMax,PredictedIoU,Clicks\r\n"
        f"aaaa_m0k4j_0.png,aaaa,{LABEL},0,{'0.5,1,0,1' if mask_box else ',,,'},,\r\n",
    }
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in rows.items():
            archive.writestr(f"annotations/{name}", text)
        archive.writestr("images/train/aaaa.png", _png(upright))
        archive.writestr("images/train/bbbb.png", _png(turned))
        archive.writestr("masks/train/aaaa_m0k4j_0.png", _png(Image.fromarray(mask, "L")))
    return path


def _decode(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB")).astype(int)


def test_contact_sheet_puts_boxes_masks_and_rotations_on_the_right_pixels(tmp_path):
    visuals = {v.file: v for v in export_visuals(str(_synthetic_export(tmp_path / "ds.zip")), tmp_path / "work")}
    sheet = _decode(visuals["contact-train.png"].png)
    assert sheet.shape == (HEADER + TILE + CAPTION + GAP, GAP + 2 * (TILE + GAP), 3)
    colour = np.array(class_colour(LABEL))
    tinted = (colour * round(255 * MASK_ALPHA) + np.array(GREY) * (255 - round(255 * MASK_ALPHA))) / 255

    # `aaaa`: 480x240 fitted to 240x120, centred vertically (60 px down); box x 60..179, y 30..89 of the picture.
    x, y = tile_origin(0, 2)
    y += 60
    assert (sheet[y + 60, x + 60] == colour).all() and (sheet[y + 60, x + 61] == colour).all()  # left edge, 2 px
    assert (sheet[y + 89, x + 120] == colour).all()  # bottom edge
    assert (sheet[y + 60, x + 179] == colour).all()  # right edge
    assert (abs(sheet[y + 60, x + 57] - GREY) <= 1).all()  # just outside the box
    assert (abs(sheet[y + 60, x + 100] - GREY) <= 1).all()  # inside the box, left of the mask
    assert (abs(sheet[y + 60, x + 150] - tinted) <= 2).all()  # inside the box and the mask
    assert (abs(sheet[y + 110, x + 200] - tinted) <= 2).all()  # the mask beyond the box

    # `bbbb` turned 90° counter-clockwise: 240x480 fitted to 120x240 (60 px right);
    # its stored top-left is now bottom-left.
    x, y = tile_origin(1, 2)
    x += 60
    assert (abs(sheet[y + 225, x + 15] - BLUE) <= 2).all()  # the blue square, upright
    assert (abs(sheet[y + 15, x + 15] - GREY) <= 2).all()  # not where it is stored
    assert (sheet[y + 210, x] == colour).all()  # box left edge (x 0..59, y 180..239)
    assert (sheet[y + 210, x + 59] == colour).all()  # box right edge
    assert (abs(sheet[y + 210, x + 62] - GREY) <= 2).all()  # right of the box


def test_a_mask_without_box_is_drawn_as_the_mask_alone(tmp_path, capsys):
    source = _synthetic_export(tmp_path / "ds.zip", mask_box=False)
    visuals = {v.file: v for v in export_visuals(str(source), tmp_path / "work")}
    sheet = _decode(visuals["contact-train.png"].png)
    colour = np.array(class_colour(LABEL))
    tinted = (colour * round(255 * MASK_ALPHA) + np.array(GREY) * (255 - round(255 * MASK_ALPHA))) / 255
    x, y = tile_origin(0, 2)
    y += 60
    assert (abs(sheet[y + 60, x + 60] - GREY) <= 1).all() and (
        abs(sheet[y + 89, x + 100] - GREY) <= 1
    ).all()  # no box inferred
    assert (abs(sheet[y + 60, x + 150] - tinted) <= 2).all() and (abs(sheet[y + 110, x + 200] - tinted) <= 2).all()
    assert {"box-sizes.png", "boxes-per-image.png"} <= set(visuals)
    assert main(["inspect", str(source), "--charts-dir", str(tmp_path / "charts")]) == 0
    assert re.search(r"^train +2 +1 +0 +0 +1$", capsys.readouterr().out, re.M)  # 2 images, 1 box, 1 mask


def test_charts_decode_at_their_figure_size(tmp_path):
    visuals = {v.file: v for v in export_visuals(str(_synthetic_export(tmp_path / "ds.zip")), tmp_path / "work")}
    # no image-level labels in this export: no chart of them
    expected = {"classes-train.png": (8, 1.2 + 0.26 * 1), "box-sizes.png": (8, 4), "boxes-per-image.png": (8, 4)}
    assert list(visuals) == ["contact-train.png", *expected]
    for name, (width, height) in expected.items():
        with Image.open(io.BytesIO(visuals[name].png)) as image:
            assert image.format == "PNG" and image.size == (int(width * DPI), int(height * DPI))


class _Resources(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag, attrs):
        self.found += [(tag, name, value or "") for name, value in attrs if name in ("src", "href", "srcset", "data")]
        if tag in ("script", "link", "iframe", "object"):
            self.found.append((tag, "", ""))


def _artifacts(*keys: str) -> list[dict]:
    """The newest artifact of each key. The API is asked directly: the client's `read_artifacts` sends null filters
    that this server rejects (422), and empty run filters join away artifacts made outside a task run."""
    from prefect.client.orchestration import get_client

    body = {"artifacts": {"key": {"any_": list(keys)}}, "sort": "UPDATED_DESC", "limit": 50, "offset": 0}
    with get_client(sync_client=True) as client:
        found = client.request("POST", "/artifacts/filter", json=body).json()
    return [next(a for a in found if a["key"] == key) for key in keys]


@pytest.mark.usefixtures("prefect_api")
def test_export_publishes_pictures_html_and_progress(cvat_dir, tmp_path, capsys):
    assert main(["export", str(cvat_dir), str(tmp_path / "out"), "--name", "ds"]) == 0
    assert "━" not in capsys.readouterr().err  # no progress bars when stderr is not a terminal
    out = tmp_path / "out"
    report = json.loads((out / "ds.report.json").read_text())
    files = [p["file"] for p in report["pictures"]["files"]]
    assert files == [
        f"ds.report/{name}"
        for name in (
            "contact-train.png",
            "contact-validation.png",
            "classes-train.png",
            "classes-validation.png",
            "box-sizes.png",
            "boxes-per-image.png",
            "image-labels.png",
        )
    ]
    markdown = (out / "ds.report.md").read_text()
    for name in files:
        assert f"]({name})" in markdown
        with Image.open(out / name) as image:
            image.load()
            if "contact-" in name:  # train: 6 images in one row; validation: 3
                columns = 6 if "train" in name else 3
                assert image.size == (GAP + columns * (TILE + GAP), HEADER + TILE + CAPTION + GAP)
            else:
                assert image.width > 400
    page = (out / "ds.report.html").read_text()
    parser = _Resources()
    parser.feed(page)
    assert len(parser.found) == len(files) and all(
        tag == "img" and value.startswith("data:image/png;base64,") for tag, _, value in parser.found
    )
    assert "<td>train</td>" in page
    progress, summary = _artifacts("openimages-ds-conversion", "openimages-ds-report")
    assert progress["type"] == "progress" and float(progress["data"]) == 100.0
    # The UI shows no picture from a path or a bucket: the artifact carries them, downscaled, as data: URLs.
    shown = re.findall(r"!\[([^]]*)\]\(data:image/(?:png|jpeg);base64,([A-Za-z0-9+/=]+)\)", summary["data"])
    assert [title for title, _ in shown] == [p["title"] for p in report["pictures"]["files"]]
    for _, data in shown:
        with Image.open(io.BytesIO(base64.b64decode(data))) as image:
            assert 240 <= image.width <= 1000
    assert len(summary["data"]) < 450_000 and "| train | 6 | 12 | 12 | 6 |" in summary["data"]
    location = f"`{out / 'ds.zip'}` (copy this location"  # a path: to copy, not a link the browser refuses
    assert location in summary["data"] and location in markdown
    assert str(out / "ds.zip") in _artifacts("openimages-ds-zip")[0]["data"]


@pytest.mark.usefixtures("prefect_api")
def test_failed_run_shows_failing_rows_and_thumbnails_of_the_failing_files(cvat_dir, tmp_path):
    broken_image = sorted((cvat_dir / "images" / "train").iterdir())[0]
    broken_image.write_bytes(b"not a jpeg")
    mask = sorted((cvat_dir / "masks" / "validation").iterdir())[0]
    mask.write_bytes(_png(Image.new("L", (64, 48), 0)))
    with pytest.raises(InvalidDataError):
        export_open_images(source=str(cvat_dir), options=ExportOptions(dest=str(tmp_path), name="ds"))
    report = json.loads((tmp_path / "ds.report.json").read_text())
    assert report["status"] == "failed" and not (tmp_path / "ds.zip").exists()
    assert [p["file"] for p in report["pictures"]["files"]] == ["ds.report/failed-files.png"]
    with Image.open(tmp_path / "ds.report" / "failed-files.png") as sheet:
        assert sheet.size == (GAP + 2 * (TILE + GAP), HEADER + TILE + CAPTION + GAP)
    markdown = (tmp_path / "ds.report.md").read_text()
    line = next(e["row"] for e in report["errors"] if e["value"] == mask.name)
    assert re.search(
        rf"\| `annotations/validation-annotations-object-segmentation.csv` \| {line} "
        rf"\| MaskPath \| mask has no object pixel",
        markdown,
    )
    assert f"| `images/train/{broken_image.name}` |" in markdown
    page = (tmp_path / "ds.report.html").read_text()
    assert "First failing rows of each check" in page and mask.name in page
    [summary] = _artifacts("openimages-ds-report")
    assert "![Files that failed their checks](data:image/" in summary["data"] and mask.name in summary["data"]


@pytest.mark.parametrize("layout, expected", [("cvat", "CVAT / Datumaro"), ("official", "Google's official release")])
def test_inspect_prints_counts_and_charts_without_exporting(request, layout, expected, tmp_path, capsys):
    source = request.getfixturevalue(f"{layout}_dir")
    assert main(["inspect", str(source), "--charts-dir", str(tmp_path / "charts")]) == 0
    text = capsys.readouterr().out
    assert f"layout: {expected}" in text and "9 image files" in text
    assert re.search(r"^train\s+6\s+12\s+6\s+6\s+6$", text, re.M)
    assert re.search(r"^validation\s+3\s+6\s+3\s+3\s+3$", text, re.M)
    assert re.search(r"^Person\s+/m/01g317\s+\d+\s+\d+\s+\d+$", text, re.M)
    charts = sorted(p.name for p in (tmp_path / "charts").iterdir())
    assert charts == [
        "box-sizes.png",
        "boxes-per-image.png",
        "classes-train.png",
        "classes-validation.png",
        "image-labels.png",
    ]
    assert all(f"{tmp_path / 'charts' / name}" in text for name in charts)
    assert not list(source.parent.glob("*.zip"))
