"""The run report for people: one list of sections, which the Markdown and the HTML renderers both walk.

A section is a title and blocks (facts, a table, a line of text, the pictures) made of spans (text, counts, code,
links); a renderer only says how each block and span looks, so both pages always hold the same content.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from dataclasses import dataclass

from openimages_etl.report.model import Picture, RunReport, Selection
from openimages_etl.schemas.kinds import COUNT_KINDS
from openimages_etl.storage.locations import browser_url

Opens = Callable[[str], "str | None"]  # what page a browser opens for a location (None: none, show it as text)


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Link:
    text: str
    url: str


Span = str | int | float | Code | Link | None  # None: an empty table cell
Line = tuple[Span, ...]


@dataclass(frozen=True)
class Facts:
    items: list[tuple[str | None, Line]]  # a bulleted list of "label: line"


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: list[Line]


@dataclass(frozen=True)
class Text:
    line: Line


@dataclass(frozen=True)
class Gallery:
    page: str  # the HTML page that holds every picture
    pictures: list[Picture]


Block = Facts | Table | Text | Gallery


@dataclass(frozen=True)
class Section:
    title: str
    blocks: list[Block]
    level: int = 2


def summary(report: RunReport, opens: Opens) -> Section:
    size = report.image_size + (f" (resized with the {report.resize_method} method)" if report.resize_method else "")
    return Section(
        f"{'✅' if report.ok else '❌'} Open Images export: {report.status}",
        [
            Facts(
                [
                    ("Source", (Code(report.source),)),
                    ("Output", location(report.output, opens)),
                    *((f"{subset} only", location(url, opens)) for subset, url in report.outputs.items()),
                    ("Image size", (size,)),
                    ("Started", (report.started.isoformat(timespec="seconds"),)),
                    ("Duration", (f"{report.duration_s} s · openimages-etl {report.version}",)),
                    *([("Note", (report.note,))] if report.note else []),
                ]
            )
        ],
        level=1,
    )


def per_subset(report: RunReport, opens: Opens) -> Section | None:
    rows = [tuple(row.values()) for row in report.counts_table()]
    return Section("Per subset", [Table(("subset", *COUNT_KINDS), rows)]) if rows else None


def selection(report: RunReport, opens: Opens) -> Section | None:
    chosen: Selection | None = report.selection
    if chosen is None:
        return None
    requested: list[Span] = []
    for r in chosen.requested:
        requested += [", " if requested else "", f"{r.entry} → ", Code(r.mid), f" {r.name}"]
    ids = chosen.image_ids
    facts = [
        ("Parameters", (", ".join(f"{k}={v}" for k, v in chosen.parameters_given().items()),)),
        ("Requested", tuple(requested) or ("no classes",)),
        (
            "Classes selected",
            (
                chosen.classes_selected,
                " (with subclasses, less exclusions)",
                f"; {chosen.merged} merged into the requested ones" if chosen.merged else "",
            ),
        ),
        *(
            [("Image list", (Code(ids.url), " (", ids.images, " images, sha256 ", Code(ids.sha256), ")"))]
            if ids
            else []
        ),
        *((None, (note,)) for note in chosen.notes),
    ]
    blocks: list[Block] = [Facts(facts)]
    if chosen.classes:
        blocks.append(
            Table(
                ("subset", "class", "MID", "images available", "images selected", "boxes", "labels", "masks"),
                [
                    (c.subset, c.name, Code(c.mid), c.available, c.selected, c.boxes, c.labels, c.masks)
                    for c in chosen.classes
                ],
            )
        )
    if chosen.shortfalls:
        blocks += [Text(("Quotas not met:",)), Facts([(None, (line,)) for line in chosen.shortfalls])]
    return Section("Selection", blocks)


def input_files(report: RunReport, opens: Opens) -> Section | None:
    rows = [
        (Code(f.file), f.kind, f.rows_in, sum(f.published.values()), f.rejected, f.not_selected) for f in report.files
    ]
    header = ("file", "kind", "rows in", "published", "rejected", "not selected")
    return Section("Input files", [Table(header, rows)]) if rows else None


def media_files(report: RunReport, opens: Opens) -> Section | None:
    rows = [(kind, c.in_, c.published, c.rejected) for kind, c in report.media.items()]
    return Section("Media files", [Table(("kind", "in", "published", "rejected"), rows)]) if rows else None


def errors(report: RunReport, opens: Opens) -> Section | None:
    if not report.errors_total:
        return None
    return Section(
        f"Errors ({report.errors_total} in all)",
        [
            Table(
                ("file", "check", "column", "count"),
                [(Code(c.file), c.check, c.column, c.count) for c in report.error_counts],
            ),
            Text(("First failing rows of each check:",)),
            Table(
                ("file", "line", "column", "check", "value"),
                [
                    (Code(e.file), e.row, e.column, e.check, None if e.value is None else Code(str(e.value)[:80]))
                    for e in report.errors
                ],
            ),
        ],
    )


def pictures(report: RunReport, opens: Opens) -> Section | None:
    if report.pictures is None or not report.pictures.files:
        return None
    return Section("Pictures", [Gallery(report.pictures.html, report.pictures.files)])


SECTIONS: tuple[Callable[[RunReport, Opens], Section | None], ...] = (
    summary,
    per_subset,
    selection,
    input_files,
    media_files,
    errors,
    pictures,
)


def sections(report: RunReport, opens: Opens = browser_url) -> list[Section]:
    return [section for make in SECTIONS if (section := make(report, opens)) is not None]


def location(url: str | None, opens: Opens = browser_url) -> Line:
    """A published file's location for people: a link where a browser can open it (the object's page in the
    cloud console for s3:// and gs://), always the location itself as code to copy."""
    if not url:
        return ("none (nothing published)",)
    page = opens(url)
    if page == url:
        return (Link(url, url),)
    if page:
        return (Code(url), " (", Link("open in the console", page), ")")
    return (Code(url), " (copy this location: a browser does not open it from a web page)")


@dataclass(frozen=True)
class Style:
    """How one medium writes each kind of span."""

    code: Callable[[str], str]
    link: Callable[[str, str], str]
    plain: Callable[[str | int | float | None], str]

    def line(self, line: Line) -> str:
        return "".join(map(self.span, line))

    def span(self, span: Span) -> str:
        if isinstance(span, Code):
            return self.code(span.text)
        if isinstance(span, Link):
            return self.link(span.text, span.url)
        return self.plain(span)


# Markdown

MARKDOWN = Style(
    code=lambda text: f"`{text.replace('`', chr(39))}`",
    link=lambda text, url: f"[{text}]({url})",
    plain=lambda value: "" if value is None else str(value),
)


def to_markdown(report: RunReport, shown: dict[str, str] | None = None, opens: Opens = browser_url) -> str:
    """NAME.report.md, and the UI's artifact. Pictures link to their files (relative, for NAME.report.md beside them),
    or, given `shown` (file -> image URL, e.g. a `data:` URL for a Prefect artifact), show from there; a picture
    missing from `shown` is named."""
    lines = []
    for section in sections(report, opens):
        lines += ["#" * section.level + " " + section.title, ""]
        for block in section.blocks:
            lines += _md_block(block, shown)
    return "\n".join(lines)


def _md_block(block: Block, shown: dict[str, str] | None) -> list[str]:
    if isinstance(block, Facts):
        return [
            f"- **{label}**: {MARKDOWN.line(line)}" if label else f"- {MARKDOWN.line(line)}"
            for label, line in block.items
        ] + [""]
    if isinstance(block, Table):
        return [_md_row(block.header), "|---" * len(block.header) + "|", *map(_md_row, block.rows), ""]
    if isinstance(block, Text):
        return [MARKDOWN.line(block.line), ""]
    lines = [f"All of them on one page: `{block.page}` (self-contained, opens in any browser).", ""]
    for picture in block.pictures:
        source = picture.file if shown is None else shown.get(picture.file)
        image = (
            f"![{picture.title}]({source})"
            if source
            else f"`{picture.file}` (too large to show here: see the page above)"
        )
        lines += [f"**{picture.title}**", "", image, ""]
    return lines


def _md_row(cells: Line) -> str:
    return "| " + " | ".join(MARKDOWN.span(cell).replace("|", "\\|").replace("\n", " ") for cell in cells) + " |"


# HTML

HTML = Style(
    code=lambda text: f"<code>{_e(text)}</code>",
    link=lambda text, url: f'<a href="{_e(url)}">{_e(text)}</a>',
    plain=lambda value: f"{value:,}" if isinstance(value, int) else _e(value),
)


def to_html(report: RunReport, pngs: dict[str, bytes], opens: Opens = browser_url) -> str:
    """NAME.report.html: one self-contained page, no script, every picture inlined from `pngs` (file -> PNG)."""
    shown = {file: f"data:image/png;base64,{base64.b64encode(png).decode()}" for file, png in pngs.items()}
    parts = []
    for section in sections(report, opens):
        parts.append(f"<h{section.level}>{_e(section.title)}</h{section.level}>")
        parts += (_html_block(block, shown) for block in section.blocks)
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>Open Images export: {_e(report.status)}</title>"
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )


STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1600px;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0 1.5em}"
    "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}td.n{text-align:right}th{background:#f3f3f3}"
    "figure{margin:1.5em 0}figcaption{font-weight:600;margin-bottom:.4em}img{max-width:100%;height:auto}"
    "code{font-size:90%}"
)


def _html_block(block: Block, shown: dict[str, str]) -> str:
    if isinstance(block, Facts):
        items = (f"<b>{_e(label)}</b>: {HTML.line(line)}" if label else HTML.line(line) for label, line in block.items)
        return "<ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>"
    if isinstance(block, Table):
        head = "".join(f"<th>{_e(h)}</th>" for h in block.header)
        body = "".join(
            "<tr>"
            + "".join(
                f"<td class=n>{HTML.span(v)}</td>" if isinstance(v, (int, float)) else f"<td>{HTML.span(v)}</td>"
                for v in row
            )
            + "</tr>"
            for row in block.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if isinstance(block, Text):
        return f"<p>{HTML.line(block.line)}</p>"
    return "\n".join(
        f'<figure><figcaption>{_e(p.title)}</figcaption><img alt="{_e(p.title)}" src="{_e(shown[p.file])}"></figure>'
        if p.file in shown
        else f"<p><code>{_e(p.file)}</code> (not found)</p>"
        for p in block.pictures
    )


def _e(value: object) -> str:
    return "" if value is None else html.escape(str(value))
