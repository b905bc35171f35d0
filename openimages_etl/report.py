"""The run report: one dict for machines (JSON), rendered as Markdown for people."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Callable

from openimages_etl.schemas.kinds import COUNT_KINDS

from . import __version__
from .failures import FailureSummary
from .storage import browser_url


def build_report(*, status: str, source: str, output: str | None, image_size: str, started: datetime,
                 finished: datetime, subsets: dict[str, dict[str, int]], files: list[dict[str, Any]],
                 failures: FailureSummary, outputs: dict[str, str] | None = None, layout: dict[str, Any] | None = None,
                 media: dict[str, dict[str, int]] | None = None, run: dict[str, Any] | None = None,
                 selection: dict[str, Any] | None = None, resize_method: str | None = None) -> dict[str, Any]:
    """`files` holds per input CSV: file, kind, rows_in, published, rejected, not_selected; `media` per kind:
    in, published, rejected; `run`: idempotency key, seconds waited for the destination's lock, leftovers removed;
    `selection`: what selection.selection_summary says, when the export selected; `resize_method` when images were resized."""
    return {
        "status": status,
        "source": source,
        "output": output,
        "outputs": outputs or {},
        "image_size": image_size,
        **({"resize_method": resize_method} if resize_method else {}),
        "subsets": subsets,
        "files": files,
        "rejected": {f["file"]: f["rejected"] for f in files if f.get("rejected")},
        "media": media or {},
        "errors": [s.as_dict() for s in failures.samples],
        "error_counts": failures.counts,
        "errors_total": failures.total,
        "layout": layout or {},
        "started": started.isoformat(timespec="seconds"),
        "finished": finished.isoformat(timespec="seconds"),
        "duration_s": round((finished - started).total_seconds(), 3),
        "version": __version__,
        "run": run or {},
        **({"selection": selection} if selection else {}),
    }


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, default=str) + "\n"


def counts_table(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"subset": subset, **{k: counts.get(k, 0) for k in COUNT_KINDS}} for subset, counts in report["subsets"].items()]


def to_markdown(report: dict[str, Any], shown: dict[str, str] | None = None,
                opens: Callable[[str], str | None] = browser_url) -> str:
    """The report for people. Pictures link to their files (relative, for NAME.report.md beside them), or, given
    `shown` (file -> image URL, e.g. a `data:` URL for a Prefect artifact), show from there; a picture missing from
    `shown` is named. `opens` tells what page a browser opens for a location (None: the location is shown as text)."""
    icon = "✅" if report["status"] in ("published", "unchanged") else "❌"
    lines = [
        f"# {icon} Open Images export: {report['status']}",
        "",
        f"- **Source**: `{report['source']}`",
        f"- **Output**: {location(report['output'], opens)}",
        *[f"- **{subset} only**: {location(url, opens)}" for subset, url in report.get("outputs", {}).items()],
        f"- **Image size**: {report['image_size']}",
        f"- **Started**: {report['started']} · **Duration**: {report['duration_s']} s · openimages-etl {report['version']}",
        *([f"- **Note**: {report['note']}"] if report.get("note") else []),
        "",
    ]
    if report["subsets"]:
        lines += ["## Per subset", "", "| subset | " + " | ".join(COUNT_KINDS) + " |", "|---" * (len(COUNT_KINDS) + 1) + "|"]
        lines += [f"| {row['subset']} | " + " | ".join(str(row[k]) for k in COUNT_KINDS) + " |" for row in counts_table(report)]
        lines.append("")
    if report.get("selection"):
        lines += selection_markdown(report["selection"])
    if report["files"]:
        lines += ["## Input files", "", "| file | kind | rows in | published | rejected | not selected |", "|---|---|---|---|---|---|"]
        lines += [f"| `{f['file']}` | {f['kind']} | {f['rows_in']} | {sum(f['published'].values())} | {f['rejected']} | {f['not_selected']} |"
                  for f in report["files"]]
        lines.append("")
    if report.get("media"):
        lines += ["## Media files", "", "| kind | in | published | rejected |", "|---|---|---|---|"]
        lines += [f"| {kind} | {c['in']} | {c['published']} | {c['rejected']} |" for kind, c in report["media"].items()]
        lines.append("")
    if report["errors_total"]:
        lines += [f"## Errors ({report['errors_total']} in all)", "", "| file | check | column | count |", "|---|---|---|---|"]
        lines += [f"| `{c['file']}` | {c['check']} | {c['column'] or ''} | {c['count']} |" for c in report["error_counts"]]
        lines += ["", "First failing rows of each check:", "", "| file | line | column | check | value |", "|---|---|---|---|---|"]
        lines += [f"| `{e['file']}` | {e['row'] or ''} | {e['column'] or ''} | {e['check']} | `{_cell(e['value'])}` |" for e in report["errors"]]
        lines.append("")
    pictures = report.get("pictures", {})
    if pictures.get("files"):
        lines += ["## Pictures", "", f"All of them on one page: `{pictures['html']}` (self-contained, opens in any browser).", ""]
        for picture in pictures["files"]:
            source = picture["file"] if shown is None else shown.get(picture["file"])
            image = f"![{picture['title']}]({source})" if source else f"`{picture['file']}` (too large to show here: see the page above)"
            lines += [f"**{picture['title']}**", "", image, ""]
    return "\n".join(lines)


def selection_markdown(selection: dict[str, Any]) -> list[str]:
    """The parameters given, the classes they resolved to, per class and subset images and annotations, shortfalls."""
    given = {k: v for k, v in selection["parameters"].items() if v not in (None, [], False) or k == "subclasses"}
    lines = ["## Selection", "", "- **Parameters**: " + ", ".join(f"{k}={v}" for k, v in given.items()),
             "- **Requested**: " + (", ".join(f"{r['entry']} → `{r['mid']}` {r['name']}" for r in selection["requested"]) or "no classes"),
             f"- **Classes selected** (with subclasses, less exclusions): {selection['classes_selected']}"
             + (f"; {selection['merged']} merged into the requested ones" if selection["merged"] else "")]
    if selection.get("image_ids"):
        ids = selection["image_ids"]
        lines.append(f"- **Image list**: `{ids['url']}` ({ids['images']} images, sha256 `{ids['sha256']}`)")
    lines += [f"- {note}" for note in selection["notes"]] + [""]
    if selection["classes"]:
        lines += ["| subset | class | MID | images available | images selected | boxes | labels | masks |", "|---" * 8 + "|"]
        lines += [f"| {r['subset']} | {r['name']} | `{r['mid']}` | {r['available']} | {r['selected']} | {r['boxes']} | {r['labels']} | {r['masks']} |"
                  for r in selection["classes"]]
        lines.append("")
    if selection["shortfalls"]:
        lines += ["Quotas not met:", ""] + [f"- {line}" for line in selection["shortfalls"]] + [""]
    return lines


def location(url: str | None, opens: Callable[[str], str | None] = browser_url) -> str:
    """A published file's location for people: a link where a browser can open it (the object's page in the
    cloud console for s3:// and gs://), always the location itself as a code span to copy."""
    if not url:
        return "none (nothing published)"
    page = opens(url)
    if page == url:
        return f"[{url}]({url})"
    if page:
        return f"`{url}` ([open in the console]({page}))"
    return f"`{url}` (copy this location: a browser does not open it from a web page)"


def _cell(value: Any) -> str:
    return "" if value is None else str(value).replace("|", "\\|").replace("`", "'")[:80]
