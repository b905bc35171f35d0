"""The run report: its JSON as earlier versions wrote it, one list of sections in both the Markdown and the HTML."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest

from openimages_etl.errors import Failure
from openimages_etl.format.failures import FailureSummary
from openimages_etl.report.model import Pictures, RunReport, build_report, read_report, to_json
from openimages_etl.report.pages import (
    SECTIONS,
    Code,
    Facts,
    Gallery,
    Link,
    Table,
    Text,
    sections,
    to_html,
    to_markdown,
)

REPORTS = Path(__file__).parent / "fixtures" / "reports"  # written by the dict-based report of main at 687a3e9
STARTED = datetime(2026, 12, 1, 1, 0, 0, 123456, tzinfo=timezone.utc)
BOXES = "annotations/train-annotations-bbox.csv"


def _report(failures: FailureSummary) -> RunReport:
    """A published run with every section: per-subset zips, a selection, rejected rows and media, pictures."""
    selection = {
        "parameters": {
            "classes": ["Vehicle"],
            "exclude_classes": [],
            "subclasses": True,
            "only_matching": False,
            "merge_subclasses": False,
            "per_class": 2,
            "max_images": None,
            "seed": 0,
            "image_ids": None,
            "drop_boxes": [],
        },
        "requested": [{"entry": "Vehicle", "mid": "/m/07yv9", "name": "Vehicle"}],
        "classes_selected": 3,
        "merged": 0,
        "notes": ["'car' names two classes: both selected"],
        "images": {"train": 4},
        "classes": [
            {
                "subset": "train",
                "mid": "/m/0k4j",
                "name": "Car",
                "available": 5,
                "selected": 2,
                "boxes": 4,
                "labels": 2,
                "masks": 1,
            },
            {
                "subset": "train",
                "mid": "/m/01bjv",
                "name": "Bus",
                "available": 1,
                "selected": 1,
                "boxes": 1,
                "labels": 0,
                "masks": 0,
            },
        ],
        "shortfalls": ["train: Bus (/m/01bjv) 1 of 2 images (1 available)"],
        "image_ids": {
            "path": "/tmp/work/package/veh.image-ids.csv",
            "images": 4,
            "sha256": "ab" * 32,
            "url": "/data/out/veh.image-ids.csv",
        },
    }
    files = [
        {
            "file": BOXES,
            "kind": "boxes",
            "rows_in": 14,
            "published": {"train": 9, "validation": 0},
            "rejected": 2,
            "not_selected": 3,
        },
        {
            "file": "annotations/class-descriptions.csv",
            "kind": "classes",
            "rows_in": 5,
            "published": {"*": 4},
            "rejected": 0,
            "not_selected": 1,
        },
    ]
    report = build_report(
        status="published",
        source="s3://bucket/in.zip",
        output="/data/out/veh.zip",
        outputs={"train": "/data/out/veh-train.zip"},
        image_size="300k",
        resize_method="fast",
        started=STARTED,
        finished=STARTED + timedelta(seconds=12.3456),
        subsets={"train": {"images": 4, "boxes": 9, "labels": 6, "masks": 1}},
        files=files,
        failures=failures,
        media={"images": {"in": 6, "published": 4, "rejected": 1}, "masks": {"in": 1, "published": 1, "rejected": 0}},
        run={"idempotency_key": "f" * 64, "lock_waited_s": 0.002, "leftovers_removed": 0},
        selection=selection,
        layout={"tables": [BOXES], "ignored": 2},
    )
    pictures = Pictures(
        html="veh.report.html",
        files=[{"file": "veh.report/contact-train.png", "title": "Contact sheet: train"}],
        seconds=1.234,
    )
    return report.model_copy(update={"pictures": pictures})


def _edgy_failures() -> FailureSummary:
    """Failures whose names and values hold the characters Markdown tables and code spans trip over."""
    return FailureSummary(
        total=3,
        counts=[
            {"file": BOXES, "column": "XMin", "check": "in_range(0, 1)", "count": 2},
            {"file": "images/train/b|ad.jpg", "column": None, "check": "image decodes", "count": 1},
        ],
        samples=[
            Failure(BOXES, 3, "XMin", "in_range(0, 1)", "1.5"),
            Failure(BOXES, 7, "XMin", "in_range(0, 1)", "x`|" * 40),
            Failure("images/train/b|ad.jpg", None, None, "image decodes", None),
        ],
    )


def test_build_report_writes_the_json_that_earlier_versions_wrote():
    assert to_json(_report(_edgy_failures())) == (REPORTS / "published.json").read_text()


@pytest.mark.parametrize("name", ["published", "unchanged", "failed"])
def test_a_published_report_reads_back_and_writes_out_unchanged(name):
    text = (REPORTS / f"{name}.json").read_text()
    report = read_report(json.loads(text))
    assert to_json(report) == text and read_report(text) == report


def test_a_report_of_the_first_version_reads_and_keeps_keys_it_does_not_know():
    """Before the lock, the media count and the selection (2026-11-24): no `run`, `media` or `resize_method`."""
    first = {
        "status": "published",
        "source": "/data/in",
        "output": "/data/out/x.zip",
        "outputs": {},
        "image_size": "original",
        "subsets": {"train": {"images": 1, "boxes": 2, "labels": 0, "masks": 0}},
        "files": [],
        "rejected": {},
        "errors": [],
        "error_counts": [],
        "errors_total": 0,
        "layout": {},
        "started": "2026-11-24T08:00:00+00:00",
        "finished": "2026-11-24T08:00:05+00:00",
        "duration_s": 5.0,
        "version": "0.1.0",
        "from_the_future": [1],
    }
    report = read_report(first)
    assert (report.run.idempotency_key, report.media, report.layout.tables) == (None, {}, [])
    assert report.as_dict()["from_the_future"] == [1] and report.as_dict()["started"] == first["started"]
    assert "# ✅ Open Images export: published" in to_markdown(report)


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.text = ""

    def handle_data(self, data):
        self.text += data


def _fragments(block) -> list[str]:
    """Every piece of text a block holds: both renderings must show each."""
    if isinstance(block, Facts):
        return [s for label, line in block.items for s in [label, *map(_span, line)] if s]
    if isinstance(block, Table):
        return [*block.header, *(s for row in block.rows for s in map(_span, row) if s)]
    if isinstance(block, Text):
        return [s for s in map(_span, block.line) if s]
    assert isinstance(block, Gallery)
    return [p.title for p in block.pictures]


def _span(span) -> str:
    return span.text if isinstance(span, (Code, Link)) else "" if span is None else str(span)


def test_every_section_shows_in_the_markdown_and_the_html():
    report = _report(
        FailureSummary(
            total=1,
            counts=[{"file": BOXES, "column": "XMin", "check": "in_range(0, 1)", "count": 1}],
            samples=[Failure(BOXES, 3, "XMin", "in_range(0, 1)", "1.5")],
        )
    )
    report = report.model_copy(update={"note": "Nothing written: the destination already holds this export"})
    shown = sections(report, lambda url: "https://console.example/" + url)
    assert len(shown) == len(SECTIONS)  # the report above has every section
    markdown = to_markdown(report, opens=lambda url: "https://console.example/" + url)
    parser = _Text()
    parser.feed(
        to_html(report, {"veh.report/contact-train.png": b"\x89PNG"}, lambda url: "https://console.example/" + url)
    )
    for section in shown:
        for text in [section.title, *(f for block in section.blocks for f in _fragments(block))]:
            assert text in markdown and text in parser.text, (section.title, text)
    for what in ("train only", "Media files", "Note", "Image list", "Quotas not met"):  # what the HTML lacked before
        assert what in parser.text
