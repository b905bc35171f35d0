"""Progress: rows, images and bytes counted as they go; bars on a terminal only."""

from __future__ import annotations

import io
import re
import time
from unittest.mock import patch

import pytest
from rich.console import Console

from openimages_etl.format import tables as tables
from openimages_etl.format.layout import CsvFile
from openimages_etl.format.tables import iter_batches, rows_estimate
from openimages_etl.progress import (
    CONVERT,
    UPLOAD,
    VALIDATE,
    UploadProgress,
    advance,
    counted,
    listening,
    terminal_progress,
    track_rows,
)
from openimages_etl.storage.locations import publish_file


class Tally:
    def __init__(self):
        self.done: dict[str, int] = {}
        self.total: dict[str, int] = {}
        self.totals_seen: list[int] = []

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.done[stage] = self.done.get(stage, 0) + done
        self.total[stage] = self.total.get(stage, 0) + total
        self.totals_seen.append(self.total[stage])


def test_rows_are_counted_per_batch_and_the_estimated_total_ends_exact(tmp_path):
    csv = tmp_path / "boxes.csv"
    csv.write_text("ImageID,LabelName\n" + "".join(f"{i:016x},/m/0k4j\n" for i in range(5000)))
    table = CsvFile("boxes.csv", "boxes", None, ("ImageID", "LabelName"), True, str(csv))
    tally = Tally()
    with listening(tally), patch.object(tables, "CSV_BATCH_BYTES", 16 << 10):
        batches = list(track_rows(iter_batches(table), rows_estimate(table, sample=16 << 10)))
    assert len(batches) > 4 and sum(b.height for b in batches) == 5000
    assert tally.done[VALIDATE] == tally.total[VALIDATE] == 5000
    assert abs(tally.totals_seen[0] - 5000) < 500  # the first guess, from the file's first lines and its size


def test_items_count_once_the_loop_is_through_with_them():
    tally = Tally()
    with listening(tally):
        seen = []
        for item in counted(range(3), CONVERT):
            seen.append(tally.done.get(CONVERT, 0))
    assert seen == [0, 1, 2] and tally.done[CONVERT] == 3
    advance(CONVERT, done=1)  # nobody listens any more: nothing happens
    assert tally.done[CONVERT] == 3


@pytest.mark.parametrize("where", ["local", "s3"])
def test_published_bytes_are_counted(request, tmp_path, where):
    local = tmp_path / "ds.zip"
    local.write_bytes(b"x" * (3 << 20))
    dest = str(tmp_path / "out") if where == "local" else f"s3://{request.getfixturevalue('s3_bucket')}/out"
    tally = Tally()
    with listening(tally):
        publish_file(local, f"{dest}/ds.zip", {}, UploadProgress())
    assert tally.done[UPLOAD] == tally.total[UPLOAD] == 3 << 20


def _draw(console: Console) -> None:
    with terminal_progress(console):
        advance(VALIDATE, total=59)
        advance(VALIDATE, done=59)
        advance(CONVERT, total=9)
        advance(CONVERT, done=2)
        time.sleep(0.2)  # two samples apart in time: a rate and an ETA
        advance(CONVERT, done=2)
        advance(UPLOAD, total=2_000_000)
        advance(UPLOAD, done=1_000_000)


def test_bars_on_a_terminal_only():
    terminal = io.StringIO()
    _draw(Console(file=terminal, force_terminal=True, color_system=None, width=120))
    text = terminal.getvalue()
    assert "rows validated" in text and "59/59 rows" in text
    assert "images converted" in text and re.search(r"4/9 images · \d+ images/s\s+00:0\d", text)  # a rate and an ETA
    assert "bytes uploaded" in text and "1.0 MB/2.0 MB" in text
    piped = io.StringIO()
    _draw(Console(file=piped, force_terminal=False))
    assert piped.getvalue() == ""
