"""How runs end on an expected error (bad input, usage, storage): Failed with the error's message, no traceback.

Prefect logs the exception that ends a task or flow run with its whole traceback, in the run's logs and on the
terminal: some 100 lines for one wrong byte in a CSV. Expected errors (`OpenImagesETLError.expected`) say all
there is to say in their message. So a flow ends in a Failed state holding such an error instead of raising it
(`fails_cleanly`), and the log records of a task that raised one lose their traceback (`quiet_expected_errors`).
Bugs keep theirs. `openimages-etl --verbose` prints the traceback of any error.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from prefect.states import Failed, State

from openimages_etl.errors import OpenImagesETLError

P = ParamSpec("P")
R = TypeVar("R")
# Where Prefect logs the exception a run ended with: task and flow engines, and the engine running a deployment's run.
RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs", "prefect.engine")


def fails_cleanly(fn: Callable[P, R]) -> Callable[P, R | State]:
    """`fn`, a flow's function, returning a Failed state that holds an expected error instead of raising it. Callers
    see no difference: calling the flow raises that error, `state.result(raise_on_failure=False)` returns it.
    (Not for tasks: a task called directly returns the state it returned, where the flow expects a value.)"""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R | State:
        try:
            return fn(*args, **kwargs)
        except OpenImagesETLError as error:
            if not error.expected:
                raise
            return Failed(message=str(error), data=error)

    # Prefect builds a flow's parameter model from the signature, resolving its annotations in the namespace of the
    # function it holds: this module's, not `fn`'s. Resolved here, they need no namespace.
    run.__signature__ = inspect.signature(fn, eval_str=True)
    return run


class NoTracebackForExpectedErrors(logging.Filter):
    """Drops the traceback from Prefect's log records of an expected error: a task's failure, and the error a
    deployment's run raises again once its flow has ended ("Engine execution exited with unexpected exception")."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            error = record.exc_info[1]
            if isinstance(error, OpenImagesETLError) and error.expected:
                record.exc_info, record.exc_text = None, None
        return True


NO_TRACEBACK = NoTracebackForExpectedErrors()


def quiet_expected_errors() -> None:
    """Install the filter on Prefect's run loggers (once: `addFilter` keeps one copy)."""
    for name in RUN_LOGGERS:
        logging.getLogger(name).addFilter(NO_TRACEBACK)
