"""The pieces that keep memory bounded and work parallel: key index, zip shards, typed reading, batch sizes, Dask."""

from __future__ import annotations

import zipfile
from pathlib import Path

import polars as pl
import pytest

from openimages_etl.config import IMAGES_PER_TASK, MIN_IMAGES_PER_TASK, ORIGINALS_PER_TASK, images_per_task
from openimages_etl.flows import export_open_images
from openimages_etl.flows.scaleout import on_dask
from openimages_etl.format import tables as tables
from openimages_etl.format.layout import CsvFile
from openimages_etl.format.sample import BOX_COLUMNS
from openimages_etl.format.validation import KeyIndex
from openimages_etl.media.shards import ShardWriter, copy_entries
from openimages_etl.options import ExportOptions
from openimages_etl.output.deflate import write_deflated

KEYS = ["a", "b", "c", None, "d"]
PROBES = pl.Series(["c", "x", None, "a", "d", "b"])


@pytest.mark.parametrize("small", [0, 10**6], ids=["hashed", "direct"])
@pytest.mark.parametrize("keys", [KEYS, ["a", "b", "a"], []], ids=["plain", "repeated", "empty"])
def test_key_index_agrees_with_polars(monkeypatch, small, keys):
    monkeypatch.setattr(KeyIndex, "SMALL", small)
    index, series = KeyIndex(pl.Series(keys, dtype=pl.String)), pl.Series(keys, dtype=pl.String)
    first = {k: i for i, k in reversed(list(enumerate(keys))) if k is not None}
    assert index.positions(PROBES).to_list() == [first.get(v) for v in PROBES]
    assert index.contains(PROBES).to_list() == PROBES.is_in(series.drop_nulls().implode()).fill_null(False).to_list()


def test_shards_merge_raw_and_by_subset(tmp_path):
    shards = {
        tmp_path / "a.zip": [("images/train/x.jpg", b"x" * 100), ("masks/validation/y.png", b"y" * 10)],
        tmp_path / "b.zip": [("images/validation/z.jpg", b"z" * 1000)],
    }
    for path, members in shards.items():
        with path.open("wb") as target:
            shard = ShardWriter(target)
            for member, data in members:
                shard.add(member, data)
            shard.close()
    with zipfile.ZipFile(tmp_path / "all.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("annotations/a.csv", "text " * 100)
        for path in shards:
            with path.open("rb") as raw:
                copy_entries(archive, raw, ("images/validation/", "masks/validation/"))
    with zipfile.ZipFile(tmp_path / "all.zip") as archive:
        assert archive.testzip() is None
        assert {n: len(archive.read(n)) for n in archive.namelist()} == {
            "annotations/a.csv": 500,
            "masks/validation/y.png": 10,
            "images/validation/z.jpg": 1000,
        }


@pytest.mark.parametrize("chunk", [7, 1 << 20])
def test_an_entry_deflated_in_parallel_chunks_reads_back_whole(tmp_path, chunk):
    parts = [tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "empty.csv"]
    parts[0].write_bytes(b"".join(b"%d,x,0.5\r\n" % n for n in range(5000)))
    parts[1].write_bytes("é,y\r\n".encode() * 300)
    parts[2].write_bytes(b"")
    with zipfile.ZipFile(tmp_path / "all.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("annotations/before.csv", "a,b\r\n")
        write_deflated(
            archive, "annotations/train-annotations-bbox.csv", [b"h1,h2\r\n", *parts], chunk=chunk, threads=2
        )
        write_deflated(archive, "annotations/ünïcode.csv", [], chunk=chunk)
        archive.writestr("annotations/after.csv", "c\r\n")
    with zipfile.ZipFile(tmp_path / "all.zip") as archive:
        assert archive.testzip() is None  # every CRC checks out
        assert archive.read("annotations/train-annotations-bbox.csv") == b"h1,h2\r\n" + b"".join(
            p.read_bytes() for p in parts
        )
        assert archive.read("annotations/ünïcode.csv") == b""
        assert archive.namelist()[-1] == "annotations/after.csv" and archive.read("annotations/after.csv") == b"c\r\n"


def _boxes(tmp_path: Path, rows: list[str]) -> CsvFile:
    path = tmp_path / "train-annotations-bbox.csv"
    path.write_text(",".join(BOX_COLUMNS) + "\n" + "\n".join(rows) + "\n")
    return CsvFile("train-annotations-bbox.csv", "boxes", "train", tuple(BOX_COLUMNS), True, str(path))


def test_a_value_that_is_no_number_falls_back_to_the_exact_path_with_its_line(tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "CSV_BATCH_BYTES", 130)  # two rows a batch: the bad value sits in a later one
    good = "0123456789abcdef,xclick,/m/01g317,1,0.1,0.2,0.1,0.2,0,0,0,0,0"
    table = _boxes(
        tmp_path, [good] * 4 + [good.replace("0.2,0.1", "0.2x,0.1", 1)] + [good.replace(",0,0,0,0,0", ",1.0,0,0,0,0")]
    )
    with pytest.raises(tables.UnparsedValue):
        list(tables.typed_batches(table, "boxes"))
    batches = [tables.typed(batch, "boxes") for batch in tables.iter_batches(table)]
    failures = pl.concat([f for _, f in batches])
    assert failures.rows() == [(6, "XMax", "is a number", "0.2x")]  # "1.0" is an integer flag, as before
    assert sum(frame.height for frame, _ in batches) == 6


def test_typed_reading_parses_numbers_and_nan_as_missing(tmp_path):
    table = _boxes(tmp_path, ["0123456789abcdef,xclick,/m/01g317,nan,0.1,0.2,0.1,0.2,0,1,-1,0,0"])
    (frame,) = list(tables.typed_batches(table, "boxes"))
    assert frame.get_column("Confidence").to_list() == [None]
    assert frame.get_column(tables.LINE).to_list() == [2] and frame.get_column("IsGroupOf").to_list() == [-1]


@pytest.mark.parametrize(
    ("images", "originals", "size"),
    [
        (9, False, MIN_IMAGES_PER_TASK),
        (4000, False, 500),
        (4000, True, 500),
        (10**6, False, IMAGES_PER_TASK),
        (10**6, True, ORIGINALS_PER_TASK),
    ],
)
def test_batches_are_thousands_but_several_per_worker(images, originals, size):
    assert images_per_task(images, originals) == size


@pytest.mark.parametrize(
    ("images", "bytes_per_image", "tasks"),
    [
        (250, 1.3e6, 8),  # photos of 8 MP: 8 tasks of 32, where counting images made one of 250
        (1800, 150e3, 8),  # 1024x768 photos
        (10**6, 300e3, 500),  # Open Images' typical photo: 2000 per task, as before
        (10**5, 1.3e6, 208),  # 8 MP: 483 per task, 600 MiB of JPEG each
        (40, 40e3, 1),  # small and light: one task is enough work
    ],
)
def test_images_to_resize_go_by_their_source_bytes(images, bytes_per_image, tasks):
    assert -(-images // images_per_task(images, bytes_per_image=bytes_per_image)) == tasks


def test_resize_batches_sample_the_source_bytes(cvat_dir, tmp_path):
    from openimages_etl.format.layout import discover
    from openimages_etl.format.validation import build_keys
    from openimages_etl.media.convert import image_batches, source_bytes_per_image
    from openimages_etl.storage.locations import DatasetRoot

    layout = discover(DatasetRoot(str(cvat_dir)), tmp_path / "index")
    keys = build_keys(layout, tmp_path)
    files = sorted((cvat_dir / "images" / "train").iterdir())
    mean = sum(f.stat().st_size for f in files) / len(files)
    assert source_bytes_per_image(layout, keys, "train", len(files)) == mean
    assert image_batches(layout, keys, ["train"], None) == [("train", 0, MIN_IMAGES_PER_TASK)]
    assert image_batches(layout, keys, ["train"], 300_000) == [
        ("train", 0, images_per_task(len(files), bytes_per_image=mean))
    ]


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_the_same_flow_runs_on_a_local_dask_cluster(cvat_dir, tmp_path):
    threads = export_open_images(source=str(cvat_dir), options=ExportOptions(dest=str(tmp_path / "threads"), name="ds"))
    options = ExportOptions(dest=str(tmp_path / "dask"), name="ds")
    dask = on_dask(export_open_images, workers=2)(source=str(cvat_dir), options=options)
    assert dask["subsets"] == threads["subsets"]
    with zipfile.ZipFile(tmp_path / "dask" / "ds.zip") as a, zipfile.ZipFile(tmp_path / "threads" / "ds.zip") as b:
        assert sorted(a.namelist()) == sorted(b.namelist())


def test_validation_reports_a_value_that_is_no_number_with_its_line(cvat_dir, tmp_path):
    from openimages_etl.format.layout import discover
    from openimages_etl.format.validation import build_keys, validate_table
    from openimages_etl.storage.locations import DatasetRoot

    bbox = cvat_dir / "annotations" / "train-annotations-bbox.csv"
    lines = bbox.read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ",yes"  # IsInside
    bbox.write_text("\n".join(lines) + "\n")
    layout = discover(DatasetRoot(str(cvat_dir)), tmp_path / "index")
    keys = build_keys(layout, tmp_path)
    check = validate_table(layout, next(t for t in layout.tables if t.path.endswith("bbox.csv")), keys, tmp_path)
    assert [(f.row, f.column, f.check, f.value) for f in check.failures.samples] == [
        (4, "IsInside", "is an integer", "yes")
    ]
    assert check.rows == len(lines) - 1
