"""Progress of the long stages, told to whoever listens in this process (the CLI's bars); silent when nobody does."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import polars as pl
from fsspec.callbacks import Callback
from rich.console import Console
from rich.default_styles import DEFAULT_STYLES
from rich.filesize import decimal
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text
from rich.theme import Theme

VALIDATE, CONVERT, UPLOAD = "validate", "convert", "upload"
STAGES = {
    VALIDATE: ("rows validated", "rows"),
    CONVERT: ("images converted", "images"),
    UPLOAD: ("bytes uploaded", "bytes"),
}

BAR_THEME = Theme({name: style for name, style in DEFAULT_STYLES.items() if name.startswith(("bar.", "progress."))})

Listener = Callable[[str, int, int], None]  # (stage, work done since last call, growth of the total)
_listeners: list[Listener] = []
_lock = threading.Lock()
T = TypeVar("T")


def advance(stage: str, done: int = 0, total: int = 0) -> None:
    """Tell listeners that `done` more units of `stage` are finished and its total grew by `total`."""
    for listener in list(_listeners):
        listener(stage, done, total)


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(listener)


def track_rows(batches: Iterable[pl.DataFrame], estimate: int) -> Iterator[pl.DataFrame]:
    """The batches of one CSV, unchanged, counted as rows validated. The file's row total starts as `estimate`
    (see tables.rows_estimate) and is set right when the file ends."""
    advance(VALIDATE, total=estimate)
    rows = 0
    for batch in batches:
        rows += batch.height
        advance(VALIDATE, done=batch.height)
        yield batch
    advance(VALIDATE, total=rows - estimate)


def counted(items: Iterable[T], stage: str) -> Iterator[T]:
    """The items, unchanged; each one counts as done in `stage` once the loop body is through with it."""
    for item in items:
        yield item
        advance(stage, done=1)


class UploadProgress(Callback):
    """fsspec's callback for one file transfer, counted as bytes uploaded."""

    def set_size(self, size: int) -> None:
        super().set_size(size)
        advance(UPLOAD, total=size or 0)

    def relative_update(self, inc: int = 1) -> None:
        super().relative_update(inc)
        advance(UPLOAD, done=inc)


class _CountColumn(ProgressColumn):
    """`12,345/20,000 rows · 3,456 rows/s`, or bytes in kB/MB/GB."""

    def render(self, task: Task) -> Text:
        unit = task.fields["unit"]
        if unit == "bytes":
            count = (
                f"{decimal(int(task.completed))}/{decimal(int(task.total))}"
                if task.total
                else decimal(int(task.completed))
            )
            speed = f" · {decimal(int(task.speed))}/s" if task.speed else ""
        else:
            count = (
                f"{int(task.completed):,}/{int(task.total):,} {unit}"
                if task.total
                else f"{int(task.completed):,} {unit}"
            )
            speed = f" · {task.speed:,.0f} {unit}/s" if task.speed else ""
        return Text(count + speed, style="progress.download")


class TerminalBars:
    """One rich progress bar per stage, drawn on `console` (share Prefect's, so its log lines print above the bars)."""

    def __init__(self, console: Console):
        self.progress = Progress(
            TextColumn("{task.description:<17}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            _CountColumn(),
            TimeRemainingColumn(compact=True, elapsed_when_finished=True),
            console=console,
            transient=False,
        )
        self.tasks: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, stage: str, done: int, total: int) -> None:
        with self.lock:
            if stage not in self.tasks:
                description, unit = STAGES.get(stage, (stage, "items"))
                self.tasks[stage] = self.progress.add_task(description, total=None, unit=unit)
            task_id = self.tasks[stage]
            task = self.progress.tasks[task_id]
            new_total = (task.total or 0) + total if total else task.total
            self.progress.update(task_id, advance=done, total=new_total)


@contextmanager
def terminal_progress(console: Console | None = None) -> Iterator[None]:
    """Progress bars on stderr while the block runs, when stderr is a terminal; nothing otherwise."""
    console = console or Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    bars = TerminalBars(console)
    with console.use_theme(BAR_THEME), bars.progress, listening(bars):  # Prefect's console has no default styles
        yield
