"""The pipeline's error types: each carries what a user needs to fix the input, and its exit code."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Failure:
    """One failing value: `row` is the 1-based line in `file` (the header is line 1), None for file-level."""

    file: str
    row: int | None
    column: str | None
    check: str
    value: Any = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        where = self.file if self.row is None else f"{self.file}:{self.row}"
        column = f" column {self.column}" if self.column else ""
        value = "" if self.value is None else f" (value {self.value!r})"
        return f"{where}{column}: {self.check}{value}"


class OpenImagesETLError(Exception):
    """Base of every error the pipeline raises on purpose; `exit_code` is what the CLI returns."""

    exit_code = 2


class UsageError(OpenImagesETLError):
    """The command or its parameters are wrong."""


class SourceError(OpenImagesETLError):
    """The source cannot be read: missing, not an archive, truncated, no Open Images files in it."""


class UnsafeSourceError(SourceError):
    """The source tries to escape: path traversal, links, bombs."""


class InvalidDataError(OpenImagesETLError):
    """The dataset breaks the format's rules; `failures` lists them (maybe capped), `total` counts all."""

    exit_code = 1

    def __init__(self, message: str, failures: list[Failure] | None = None, total: int | None = None):
        super().__init__(message)
        self.failures = failures or []
        self.total = len(self.failures) if total is None else total


class PublishError(OpenImagesETLError):
    """The export could not be put at the destination; nothing new is visible there."""

    exit_code = 3
