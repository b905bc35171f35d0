"""Media in zip shards: each conversion batch writes one STORED zip, the package copies their entries raw.

Writing a file per image and zipping them later costs a file system round trip per image, twice.
A shard is one sequential write; merging copies its bytes (local headers and data) as they are and
only rewrites the central directory, so no image is read, checksummed or compressed again.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from typing import IO

FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # same bytes for the same input: no wall clock in the archive
FIXED_DOS = (0, (FIXED_TIME[0] - 1980) << 9 | FIXED_TIME[1] << 5 | FIXED_TIME[2])  # MS-DOS (time, date)
LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # zip local file header, 30 bytes
LOCAL_SIGNATURE = b"PK\x03\x04"
UTF8_NAME = 0x800  # general purpose flag: the name is UTF-8
COPY_CHUNK = 8 << 20


class ShardWriter:
    """A STORED zip written in one pass into `target` (a local file or an upload: it never seeks); members keep
    their archive path (`images/<subset>/<name>`)."""

    def __init__(self, target: IO[bytes]):
        self._zip = zipfile.ZipFile(target, "w", zipfile.ZIP_STORED)
        self._end = 0

    def add(self, member: str, data: bytes) -> None:
        # What ZipFile.writestr does for a STORED entry, minus its seek back to patch the header (sizes and
        # CRC are known before writing) and its general header code: a third of the cost per small image.
        info, name, flags = new_entry(member, self._end)
        info.file_size = info.compress_size = len(data)
        info.CRC = zlib.crc32(data)
        if len(data) < zipfile.ZIP64_LIMIT:
            header = (
                LOCAL_HEADER.pack(
                    LOCAL_SIGNATURE,
                    zipfile.DEFAULT_VERSION,
                    flags,
                    zipfile.ZIP_STORED,
                    *FIXED_DOS,
                    info.CRC,
                    len(data),
                    len(data),
                    len(name),
                    0,
                )
                + name
            )
        else:
            header = info.FileHeader()
        self._zip.fp.write(header)
        self._zip.fp.write(data)
        self._end += len(header) + len(data)
        register(self._zip, info, self._end)

    def close(self) -> None:
        """Write the shard's central directory (`target` stays open)."""
        self._zip.close()


def new_entry(member: str, offset: int) -> tuple[zipfile.ZipInfo, bytes, int]:
    """The directory entry of a member written at `offset` (fixed time, mode 644), its name's bytes, its name flag."""
    info = zipfile.ZipInfo(member, FIXED_TIME)
    info.external_attr = 0o644 << 16
    info.header_offset = offset
    return info, member.encode(), 0 if member.isascii() else UTF8_NAME


def copy_entries(archive: zipfile.ZipFile, raw: IO[bytes], prefixes: tuple[str, ...]) -> int:
    """Append the members of the shard open in `raw` whose names start with one of `prefixes` to `archive`, bytes as
    they are; returns how many."""
    with zipfile.ZipFile(raw) as source:
        entries = [info for info in source.infolist() if info.filename.startswith(prefixes)]
        if len(entries) == len(source.infolist()):  # the whole shard: one bulk copy of everything before its directory
            return _append(archive, raw, entries, 0, source.start_dir)
        return sum(_append(archive, raw, [info], info.header_offset, _entry_end(raw, info)) for info in entries)


def _append(archive: zipfile.ZipFile, raw, entries: list[zipfile.ZipInfo], start: int, end: int) -> int:
    # zipfile has no public API for raw entries: write the bytes at the archive's end, then register
    # each entry (the shard's own, moved) with its new offset so close() writes it into the central directory.
    shift = archive.fp.tell() - start
    raw.seek(start)
    _copy_range(raw, archive.fp, end - start)
    archive_end = archive.fp.tell()
    for info in entries:
        info.header_offset += shift
        register(archive, info, archive_end)
    return len(entries)


def register(archive: zipfile.ZipFile, info: zipfile.ZipInfo, archive_end: int) -> None:
    """Enter an entry whose bytes are already written, so that close() lists it in the central directory."""
    archive.filelist.append(info)
    archive.NameToInfo[info.filename] = info
    archive.start_dir = archive_end


def _entry_end(raw, info: zipfile.ZipInfo) -> int:
    raw.seek(info.header_offset)
    header = LOCAL_HEADER.unpack(raw.read(LOCAL_HEADER.size))
    if info.flag_bits & 0x08:
        raise ValueError(f"{info.filename}: entries with a data descriptor cannot be copied raw")
    return info.header_offset + LOCAL_HEADER.size + header[9] + header[10] + info.compress_size


def _copy_range(source, target, length: int) -> None:
    while length > 0:
        chunk = source.read(min(COPY_CHUNK, length))
        if not chunk:
            raise OSError("shard ended early")
        target.write(chunk)
        length -= len(chunk)
