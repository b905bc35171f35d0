"""Property tests: generated malformed CSVs and archives through the readers. The only outcomes allowed are
success or our own error type saying which file (and, for CSVs, which row)."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openimages_etl.errors import SourceError, UnreadableFileError
from openimages_etl.format.layout import CsvFile, discover
from openimages_etl.format.tables import check_batch, iter_batches, typed
from openimages_etl.storage.locations import DatasetRoot, stage_source

FIELD = st.one_of(
    st.sampled_from(
        [
            "a1",
            "/m/01g317",
            "0.5",
            "1",
            "-1",
            "nan",
            "inf",
            "-inf",
            "",
            "1e309",
            "xclick",
            '"',
            '""',
            ",",
            "\n",
            "\r\n",
            "é",
            "\ufeff",
        ]
    ),
    st.text(max_size=12),
)
ROW = st.lists(FIELD, min_size=0, max_size=16)
RAW = st.one_of(st.binary(max_size=40), st.sampled_from([b"\xff\xfe", b"\xef\xbb\xbf", b"\x00", b'"unterminated']))
# max_examples from the profile conftest.py loads: fewer in the fast loop
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
BOX_HEADER = (
    b"ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside"
)


def _csv_bytes(rows: list[list[str]], raws: list[bytes], crlf: bool) -> bytes:
    newline = b"\r\n" if crlf else b"\n"
    lines = [
        ",".join(f'"{f}"' if any(c in f for c in ',"\n') else f for f in row).encode("utf-8", "surrogatepass")
        for row in rows
    ]
    for position, raw in enumerate(raws):
        lines.insert(position * 3 % (len(lines) + 1), raw)
    return newline.join([BOX_HEADER, *lines]) + newline


@SETTINGS
@given(rows=st.lists(ROW, max_size=12), raws=st.lists(RAW, max_size=3), crlf=st.booleans())
def test_malformed_rows_give_rows_or_an_error_with_file_and_row(tmp_path_factory, rows, raws, crlf):
    folder = tmp_path_factory.mktemp("csv")
    path = folder / "train-annotations-bbox.csv"
    path.write_bytes(_csv_bytes(rows, raws, crlf))
    columns = tuple(BOX_HEADER.decode().split(","))
    try:
        for frame in iter_batches(CsvFile(path.name, "boxes", "train", columns, header=True, local=str(path))):
            typed_frame, parse_failures = typed(frame, "boxes")
            failures = check_batch(typed_frame, "boxes")
            assert set(failures.columns) == {"row", "column", "check", "value"}
            assert parse_failures.get_column("row").is_between(2, 2 + len(rows) + len(raws) * 2).all()
    except UnreadableFileError as exc:
        assert exc.file == path.name and exc.row is not None and exc.row >= 1


MEMBER = st.one_of(
    st.sampled_from(
        [
            "annotations/class-descriptions.csv",
            "annotations/train-annotations-bbox.csv",
            "images/train/a.jpg",
            "../x.csv",
            "/abs.csv",
            "C:\\win.csv",
            "a/../../b.csv",
            "inner.zip",
            "train-masks-0.zip",
            "",
            "dir/",
        ]
    ),
    st.text(alphabet=st.characters(blacklist_characters="\0", blacklist_categories=["Cs"]), min_size=1, max_size=20),
)
ARCHIVE = st.lists(st.tuples(MEMBER, st.binary(max_size=200)), max_size=6)


def _write_archive(path: Path, members: list[tuple[str, bytes]], kind: str) -> None:
    if kind == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in members:
                if name:
                    archive.writestr(name, data)
        return
    with tarfile.open(path, "w:gz" if kind == "tar.gz" else "w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


@pytest.mark.slow  # 120 archives of each kind
@SETTINGS
@given(members=ARCHIVE, kind=st.sampled_from(["zip", "tar", "tar.gz"]), cut=st.one_of(st.none(), st.integers(0, 400)))
def test_malformed_archives_are_staged_or_refused_with_our_error(tmp_path_factory, members, kind, cut):
    folder = tmp_path_factory.mktemp("archive")
    path = folder / f"source.{kind}"
    _write_archive(path, members, kind)
    if cut is not None:
        path.write_bytes(path.read_bytes()[:cut])
    try:
        root = stage_source(str(path), {}, folder / "work")
        discover(root, folder / "index")
    except UnreadableFileError as exc:  # a CSV of the archive: file and row
        assert exc.file and exc.row
    except SourceError as exc:  # the archive itself, or what was staged from it
        assert str(folder) in str(exc)
    outside = [
        p for p in folder.parent.rglob("*") if p.name in ("x.csv", "abs.csv", "b.csv") and folder not in p.parents
    ]
    assert not outside


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b'/m/1,One\r\n/m/2,"Two\nlines"\r\n'])
def test_headerless_class_files_of_any_shape_read(tmp_path, data):
    (tmp_path / "class-descriptions.csv").write_bytes(data)
    (tmp_path / "train-annotations-human-imagelabels.csv").write_bytes(b"ImageID,Source,LabelName,Confidence\n")
    layout = discover(DatasetRoot(str(tmp_path)), tmp_path / "index")
    classes = layout.of_kind("classes")[0]
    frames = list(iter_batches(classes))
    assert sum(f.height for f in frames) == data.count(b"/m/")
