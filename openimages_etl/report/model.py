"""The run report: one typed record of a run, written as NAME.report.json for machines.

`report_pages` renders it for people (Markdown, HTML). The JSON keeps the keys and shapes of the reports published
before this record existed, so an earlier run's report reads back (the `unchanged` path, the destination's lock).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, model_serializer

from openimages_etl import __version__
from openimages_etl.errors import Failure
from openimages_etl.format.failures import FailureSummary
from openimages_etl.schemas.kinds import COUNT_KINDS


class Record(BaseModel):
    """A part of the report. Keys it does not know (a newer version's) are kept, and written back."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)
    omitted_when_none: ClassVar[frozenset[str]] = frozenset()  # keys that earlier reports leave out rather than null

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None or k not in self.omitted_when_none}


class InputFile(Record):
    """One input CSV's rows: in = published (per subset) + rejected + not selected."""

    file: str
    kind: str
    rows_in: int
    published: dict[str, int]
    rejected: int
    not_selected: int


class MediaCounts(Record):
    """One kind of media file (images, masks): in = published + rejected."""

    in_: int = Field(alias="in")
    published: int
    rejected: int


class FailureCount(Record):
    file: str
    column: str | None
    check: str
    count: int


class LayoutInfo(Record):
    tables: list[str] = []
    ignored: int = 0


class RunInfo(Record):
    """The destination's lock: the idempotency key, seconds waited for another run, partial files removed."""

    idempotency_key: str | None = None
    lock_waited_s: float = 0
    leftovers_removed: int = 0


class RequestedClass(Record):
    entry: str
    mid: str
    name: str


class SelectedClass(Record):
    """Per subset and selected class: images available and selected, annotations kept."""

    subset: str
    mid: str
    name: str
    available: int
    selected: int
    boxes: int = 0
    labels: int = 0
    masks: int = 0


class ImageList(Record):
    """The published list of the selected images (`--image-ids` reproduces the export from it)."""

    path: str | None = None  # where reports before the work area wrote it in their work folder
    images: int
    sha256: str
    url: str


class Selection(Record):
    """What `selection.selection_summary` says, when the export selected."""

    omitted_when_none: ClassVar[frozenset[str]] = frozenset({"image_ids"})
    parameters: dict[str, Any]
    requested: list[RequestedClass] = []
    classes_selected: int = 0
    merged: int = 0
    notes: list[str] = []
    images: dict[str, int] | None = None
    classes: list[SelectedClass] = []
    shortfalls: list[str] = []
    image_ids: ImageList | None = None

    def parameters_given(self) -> dict[str, Any]:
        return {k: v for k, v in self.parameters.items() if v not in (None, [], False) or k == "subclasses"}


class Picture(Record):
    file: str  # relative to DEST: NAME.report/<name>.png
    title: str


class Pictures(Record):
    html: str  # the one-page report holding every picture
    files: list[Picture] = []
    seconds: float = 0


class RunReport(Record):
    """What a run did, in the order of NAME.report.json's keys."""

    omitted_when_none: ClassVar[frozenset[str]] = frozenset({"resize_method", "selection", "pictures", "note"})
    status: Literal["published", "failed", "unchanged"]
    source: str
    output: str | None = None  # the full zip
    outputs: dict[str, str] = {}  # subset -> its own zip (--per-subset)
    image_size: str
    resize_method: str | None = None  # when images were resized
    subsets: dict[str, dict[str, int]] = {}  # subset -> COUNT_KINDS -> published
    files: list[InputFile] = []
    rejected: dict[str, int] = {}  # input file -> rows rejected, where any were
    media: dict[str, MediaCounts] = {}
    errors: list[Failure] = []  # the first failing rows of each check
    error_counts: list[FailureCount] = []
    errors_total: int = 0
    layout: LayoutInfo = LayoutInfo()
    started: datetime
    finished: datetime
    duration_s: float
    version: str
    run: RunInfo = RunInfo()
    selection: Selection | None = None
    pictures: Pictures | None = None  # added by write-report
    note: str | None = None  # why an unchanged run wrote nothing

    @field_serializer("started", "finished")
    def _seconds(self, moment: datetime) -> str:
        return moment.isoformat(timespec="seconds")

    @property
    def ok(self) -> bool:
        return self.status in ("published", "unchanged")

    def as_dict(self) -> dict[str, Any]:
        """The report as NAME.report.json holds it (what the flows return)."""
        return self.model_dump(by_alias=True)

    def counts_table(self) -> list[dict[str, Any]]:
        """Per subset, what was published of each kind: the report's first table and the UI's table artifact."""
        return [
            {"subset": subset, **{k: counts.get(k, 0) for k in COUNT_KINDS}} for subset, counts in self.subsets.items()
        ]


def build_report(
    *,
    status: str,
    source: str,
    output: str | None,
    image_size: str,
    started: datetime,
    finished: datetime,
    subsets: dict[str, dict[str, int]],
    files: list[dict[str, Any]],
    failures: FailureSummary,
    outputs: dict[str, str] | None = None,
    layout: dict[str, Any] | None = None,
    media: dict[str, dict[str, int]] | None = None,
    run: dict[str, Any] | None = None,
    selection: dict[str, Any] | None = None,
    resize_method: str | None = None,
) -> RunReport:
    """`files` holds per input CSV: file, kind, rows_in, published, rejected, not_selected; `media` per kind:
    in, published, rejected; `run`: idempotency key, seconds waited for the destination's lock, leftovers removed;
    `selection`: what selection.selection_summary says, when the export selected; `resize_method` when images
    were resized."""
    return RunReport(
        status=status,
        source=source,
        output=output,
        outputs=outputs or {},
        image_size=image_size,
        resize_method=resize_method,
        subsets=subsets,
        files=files,
        rejected={f["file"]: f["rejected"] for f in files if f.get("rejected")},
        media=media or {},
        errors=failures.samples,
        error_counts=failures.counts,
        errors_total=failures.total,
        layout=layout or {},
        started=started,
        finished=finished,
        duration_s=round((finished - started).total_seconds(), 3),
        version=__version__,
        run=run or {},
        selection=selection,
    )


def read_report(data: dict[str, Any] | str | bytes) -> RunReport:
    """A published report (NAME.report.json's text or its parsed dict), of this version or an earlier one."""
    return RunReport.model_validate_json(data) if isinstance(data, (str, bytes)) else RunReport.model_validate(data)


def to_json(report: RunReport) -> str:
    return json.dumps(report.as_dict(), indent=2, default=str) + "\n"
