"""The hostile corpus: builders for unsafe archives, broken CSVs and bad images, each a few KB on disk.

Every builder takes a folder to write into and returns the path of the file it made; the test
tables in `test_hostile_inputs.py` pair each builder with the outcome the pipeline must give.
"""

from __future__ import annotations

import io
import stat
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

CSV_OK = "annotations/class-descriptions.csv"
ZEROS = b"\0" * (4 << 20)  # deflates ~1000x: a bomb once above the 1 MiB ratio floor


def _zip(path: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return path


def _patch_central_directory(path: Path, offset: int, fmt: str, value: int) -> Path:
    """Rewrite one field of every central directory entry (what `zipfile` trusts), leaving the data alone."""
    data = bytearray(path.read_bytes())
    start = data.find(b"PK\x01\x02")
    while start != -1:
        struct.pack_into(fmt, data, start + offset, value)
        start = data.find(b"PK\x01\x02", start + 4)
    path.write_bytes(bytes(data))
    return path


def _tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as archive:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                archive.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                archive.addfile(info, io.BytesIO(member[1]))
    return path


def _special(name: str, kind: bytes, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def _symlink_zip(folder: Path) -> Path:
    info = zipfile.ZipInfo("annotations/link.csv")
    info.create_system, info.external_attr = 3, (stat.S_IFLNK | 0o777) << 16
    return _zip(folder / "a.zip", [(info, b"/etc/passwd")])


# name -> builder(folder) -> archive path; each must be refused with UnsafeSourceError (exit 2)
UNSAFE_ARCHIVES = {
    "zip-slip": lambda d: _zip(d / "a.zip", [("../../evil.csv", b"x")]),
    "zip-absolute": lambda d: _zip(d / "a.zip", [("/etc/evil.csv", b"x")]),
    "zip-drive-letter": lambda d: _zip(d / "a.zip", [("C:\\evil.csv", b"x")]),
    "zip-backslash-slip": lambda d: _zip(d / "a.zip", [("..\\..\\evil.csv", b"x")]),
    "zip-symlink": _symlink_zip,
    "zip-duplicate-member": lambda d: _zip(d / "a.zip", [(CSV_OK, b"/m/1,a\n"), (CSV_OK, b"/m/2,b\n")]),
    "zip-bomb-ratio": lambda d: _zip(d / "a.zip", [("annotations/train-annotations-bbox.csv", ZEROS)]),
    "tar-slip": lambda d: _tar(d / "a.tar", [("../evil.csv", b"x")]),
    "tar-absolute": lambda d: _tar(d / "a.tar", [("/tmp/evil.csv", b"x")]),
    "tar-symlink": lambda d: _tar(d / "a.tar", [_special("annotations/x.csv", tarfile.SYMTYPE, "/etc/passwd")]),
    "tar-hardlink": lambda d: _tar(d / "a.tar", [_special("annotations/x.csv", tarfile.LNKTYPE, "/etc/passwd")]),
    "tar-char-device": lambda d: _tar(d / "a.tar", [_special("annotations/tty", tarfile.CHRTYPE)]),
    "tar-fifo": lambda d: _tar(d / "a.tar", [_special("annotations/fifo", tarfile.FIFOTYPE)]),
    "tar-gz-bomb": lambda d: _tar(d / "a.tar.gz", [("annotations/train-annotations-bbox.csv", ZEROS)], "w:gz"),
}

# name -> (builder, environment overrides): refused by a configurable cap
CAPPED_ARCHIVES = {
    "zip-member-count": (
        lambda d: _zip(d / "a.zip", [(f"images/train/{i}.jpg", b"x") for i in range(6)]),
        {"OPENIMAGES_ETL_MAX_ARCHIVE_MEMBERS": "5"},
    ),
    "zip-total-bytes": (
        lambda d: _zip(d / "a.zip", [(CSV_OK, b"/m/1,a\n" * 200)]),
        {"OPENIMAGES_ETL_MAX_ARCHIVE_BYTES": "1000"},
    ),
    "tar-member-count": (
        lambda d: _tar(d / "a.tar", [(f"images/train/{i}.jpg", b"x") for i in range(6)]),
        {"OPENIMAGES_ETL_MAX_ARCHIVE_MEMBERS": "5"},
    ),
    "tar-total-bytes": (
        lambda d: _tar(d / "a.tar", [(CSV_OK, b"/m/1,a\n" * 200)]),
        {"OPENIMAGES_ETL_MAX_ARCHIVE_BYTES": "1000"},
    ),
}


def _truncated(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _truncated_tar(d: Path, compression: str) -> Path:
    return _truncated(
        _tar(d / f"a.tar.{compression}", [(CSV_OK, np.random.default_rng(0).bytes(20000))], f"w:{compression}")
    )


def _big_csv_zip(d: Path) -> Path:
    return _zip(d / "a.zip", [(CSV_OK, b"".join(b"/m/%d,Name %d\n" % (i, i) for i in range(3000)))])


# name -> builder: unreadable, refused with SourceError (exit 2) before any row is read
UNREADABLE_ARCHIVES = {
    "zip-truncated": lambda d: _truncated(_big_csv_zip(d)),
    "zip-empty": lambda d: _zip(d / "a.zip", []),
    "zip-zero-bytes": lambda d: (d / "a.zip").write_bytes(b"") or d / "a.zip",
    "zip-not-a-zip": lambda d: (d / "a.zip").write_bytes(b"MZ\x90\0 not a zip at all" * 10) or d / "a.zip",
    "zip-encrypted-flag": lambda d: _patch_central_directory(_big_csv_zip(d), 8, "<H", 0x1),
    "zip-unknown-method": lambda d: _patch_central_directory(_big_csv_zip(d), 10, "<H", 99),
    "tar-truncated": lambda d: _truncated_tar(d, "gz"),
    "tar-bz2-truncated": lambda d: _truncated_tar(d, "bz2"),
    "tar-xz-truncated": lambda d: _truncated_tar(d, "xz"),
    "tar-empty": lambda d: _tar(d / "a.tar", []),
    "tar-not-a-tar": lambda d: (d / "a.tar.gz").write_bytes(b"\x1f\x8b garbage") or d / "a.tar.gz",
}


def lying_zip(d: Path) -> Path:
    """A valid-looking zip whose directory says its CSV is 40 bytes while the data holds 4 MiB."""
    path = _zip(d / "lying.zip", [(CSV_OK, b"/m/1,a\n" + b"/m/2,b\n" * (600_000))])
    return _patch_central_directory(path, 24, "<I", 40)


# --- CSVs: (name, header line or None, body bytes) --------------------------------------------
LABELS_HEADER = b"ImageID,Source,LabelName,Confidence\n"
CSV_CASES = {
    # name: (bytes of a labels CSV, expected: "ok" rows | ("unreadable", row) )
    "bom-and-crlf": (b"\xef\xbb\xbf" + LABELS_HEADER.replace(b"\n", b"\r\n") + b"a1,x,/m/1,1\r\na2,x,/m/1,0\r\n", 2),
    "quoted-newline": (LABELS_HEADER + b'a1,"multi\nline",/m/1,1\na2,x,/m/1,1\n', 2),
    "header-only": (LABELS_HEADER, 0),
    # bytes that are not UTF-8 read as U+FFFD: validation reports that row's cell (NOT_UTF8_CASES), the rest reads
    "not-utf8": (LABELS_HEADER + b"a1,x,/m/1,1\na2,\xff\xfe,/m/1,1\n", 2),
    # a short row reads with nulls for its missing fields, which the schema checks report with their row
    "too-few-fields": (LABELS_HEADER + b"a1,x,/m/1,1\na2,x,/m/1,1\na3,x\n", 3),
    "too-many-fields": (LABELS_HEADER + b"a1,x,/m/1,1,extra\n", ("unreadable", 2)),
    "unterminated-quote": (LABELS_HEADER + b'a1,x,/m/1,1\na2,"open,/m/1,1\na3,x,/m/1,1\n', ("unreadable", 3)),
    # polars has no block size a field must fit in: a huge field is read, and the checks judge its value
    "huge-field": (LABELS_HEADER + b"a1,x,/m/1,1\na2," + b"y" * 300_000 + b",/m/1,1\n", 2),
    "empty-file": (b"", ("unreadable", 1)),
    "duplicated-header": (b"ImageID,Source,LabelName,LabelName\na1,x,/m/1,1\n", ("unreadable", 1)),
    "missing-column": (b"ImageID,Source,LabelName\na1,x,/m/1\n", ("unreadable", 1)),
}


def edit_cells(data: bytes, cells: dict[tuple[int, str], bytes]) -> bytes:
    """A CSV (header line, no quoted fields) with the cells at (line, column name) replaced by raw bytes."""
    ending = b"\r\n" if b"\r\n" in data else b"\n"
    lines = data.split(ending)
    header = lines[0].decode().split(",")
    for (line, column), value in cells.items():
        fields = lines[line - 1].split(b",")
        fields[header.index(column)] = value
        lines[line - 1] = b",".join(fields)
    return ending.join(lines)


# name: (edit of the sample's 12-row train labels CSV, the cells reported as not UTF-8 (line, column))
NOT_UTF8_CASES = {
    "latin1-in-text": (lambda d: edit_cells(d, {(3, "Source"): b"verifi\xe9d"}), {(3, "Source")}),
    "in-a-number": (lambda d: edit_cells(d, {(4, "Confidence"): b"1\xa0"}), {(4, "Confidence")}),
    "two-cells-of-a-row": (
        lambda d: edit_cells(d, {(3, "ImageID"): b"5187f5e7ece1412\xff", (3, "LabelName"): b"/m/\xc0\xaf"}),
        {(3, "ImageID"), (3, "LabelName")},
    ),
    # U+FFFD written as such is text like any other: only a file's bytes that are not UTF-8 fail
    "own-replacement-character": (lambda d: edit_cells(d, {(3, "Source"): "verifi\ufffd".encode()}), set()),
    "both-kinds": (
        lambda d: edit_cells(d, {(3, "Source"): "\ufffd".encode(), (5, "Source"): b"x\xc3"}),
        {(5, "Source")},
    ),
    "cut-off-by-the-end": (
        lambda d: edit_cells(d, {(13, "Confidence"): b"1\xe2\x82"}).rstrip(b"\r\n"),
        {(13, "Confidence")},
    ),
}


# --- images: name -> (bytes builder, target_pixels, expected "ok"/(height, width) or "error") --
def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _photo(height: int = 60, width: int = 80, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).convert(mode)


def _oriented(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(_photo(), "JPEG", exif=exif.tobytes())


IMAGE_CASES = {
    "bomb-png": (lambda: _encode(Image.new("1", (20_000, 20_000)), "PNG"), None, "error"),
    "bomb-png-resized": (lambda: _encode(Image.new("1", (20_000, 20_000)), "PNG"), 300_000, "error"),
    "truncated-jpeg": (lambda: _encode(_photo(), "JPEG")[:-300], None, "error"),
    "truncated-jpeg-resized": (lambda: _encode(_photo(), "JPEG")[:-300], 300_000, "error"),
    "truncated-png": (lambda: _encode(_photo(), "PNG")[:-20], None, "error"),
    "text-named-jpg": (lambda: b"<html>not an image</html>", None, "error"),
    "empty-file": (lambda: b"", None, "error"),
    "cmyk-jpeg": (lambda: _encode(_photo(mode="CMYK"), "JPEG"), 300_000, (60, 80)),
    "cmyk-jpeg-kept": (lambda: _encode(_photo(mode="CMYK"), "JPEG"), None, (60, 80)),
    "grey-16-bit-png": (
        lambda: _encode(Image.fromarray(np.full((60, 80), 40_000, np.uint16)), "PNG"),
        300_000,
        (60, 80),
    ),
    "palette-png-transparency": (lambda: _encode(_photo().convert("P"), "PNG", transparency=0), 300_000, (60, 80)),
    "exif-rotated-kept": (lambda: _oriented(6), None, (80, 60)),
    "exif-rotated-resized": (lambda: _oriented(6), 300_000, (80, 60)),
    "exif-mirrored-resized": (lambda: _oriented(2), 300_000, (60, 80)),
}

MASK_CASES = {
    "bomb": (lambda: _encode(Image.new("1", (20_000, 20_000), 1), "PNG"), "error"),
    "jpeg-named-png": (lambda: _encode(Image.new("L", (8, 8), 255), "JPEG"), "error"),
    "empty-mask": (lambda: _encode(Image.new("L", (8, 8), 0), "PNG"), "error"),
    "not-an-image": (lambda: b"\x89PNG\r\n\x1a\n broken", "error"),
    "mode-1": (lambda: _encode(Image.new("1", (8, 8), 1), "PNG"), "ok"),
    "mode-16-bit": (lambda: _encode(Image.fromarray(np.full((8, 8), 300, np.uint16)), "PNG"), "ok"),
    "mode-palette": (lambda: _encode(Image.new("L", (8, 8), 200).convert("P"), "PNG"), "ok"),
    "mode-rgba-opaque-black": (lambda: _encode(Image.new("RGBA", (8, 8), (0, 0, 0, 255)), "PNG"), "error"),
    "mode-rgb": (lambda: _encode(Image.new("RGB", (8, 8), (0, 90, 0)), "PNG"), "ok"),
}
