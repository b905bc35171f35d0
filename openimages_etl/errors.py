"""The pipeline's error types: each carries what a user needs to fix the input, and its exit code."""

from __future__ import annotations

import errno
from dataclasses import asdict, dataclass
from typing import Any

# OS errors that another try will not fix: retrying them only delays the clear error.
PERMANENT_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.ENOENT,
    errno.ENOTDIR,
    errno.EISDIR,
}


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
    retryable = False  # True when the cause is transient (network, throttling): the task may try again
    expected = True  # a fault of the input, the command or the storage, which the message explains: no traceback


class UsageError(OpenImagesETLError):
    """The command or its parameters are wrong."""


class SourceError(OpenImagesETLError):
    """The source cannot be read: missing, not an archive, truncated, no Open Images files in it."""


class UnsafeSourceError(SourceError):
    """The source tries to escape: path traversal, links, bombs."""


class UnreadableFileError(SourceError):
    """A file of the source cannot be parsed at all (encoding, quoting, field count, header): `file`, `row`
    say where."""

    def __init__(self, file: str, row: int | None, problem: str):
        super().__init__(f"{file}:{row}: {problem}" if row else f"{file}: {problem}")
        self.file, self.row, self.problem = file, row, problem


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


class AccountingError(OpenImagesETLError):
    """Rows or media went missing between reading and publishing: a bug, so nothing is published."""

    exit_code = 4
    expected = False


def storage_error(kind: type[OpenImagesETLError], message: str, cause: BaseException) -> OpenImagesETLError:
    """Wrap an I/O failure; it stays retryable unless the OS says it is permanent (no space, no permission, missing)."""
    error = kind(message)
    permanent = isinstance(cause, (PermissionError, FileNotFoundError, NotADirectoryError, IsADirectoryError)) or (
        isinstance(cause, OSError) and cause.errno in PERMANENT_ERRNOS
    )
    error.retryable = isinstance(cause, OSError) and not permanent
    return error


def is_transient(error: BaseException) -> bool:
    """Worth another try: raw network/OS errors and our storage errors marked retryable; never bad input or bugs."""
    if isinstance(error, OpenImagesETLError):
        return error.retryable
    return isinstance(error, (OSError, TimeoutError)) and not (
        isinstance(error, (PermissionError, FileNotFoundError)) or error.errno in PERMANENT_ERRNOS
    )
