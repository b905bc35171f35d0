"""One thread at a time in `ast.parse`, on the Pythons where parsing in two threads at once can fail.

CPython 3.11 and 3.12 keep the AST converter's recursion depth in state shared by all threads: when another thread
parses in the middle of a conversion, the first fails with "SystemError: AST constructor recursion depth mismatch"
(python/cpython#106905; seen here on 3.11.7, in a flow's task threads). Those threads parse more than one would
think: pydantic reads builtins' signatures through `inspect` (Prefect's heartbeats), matplotlib parses its rc file when
the report first draws, pytest rewrites a plugin's modules as a task imports them (pandera -> hypothesis).
"""

from __future__ import annotations

import ast
import functools
import sys
import threading

FIXED_IN = (3, 13)


def serialise_ast_parse() -> None:
    """Wrap `ast.parse` in a lock (re-entrant: a parse may parse again through a finalizer); once per process."""
    if sys.version_info >= FIXED_IN or getattr(ast.parse, "serialised", False):
        return
    lock, parse = threading.RLock(), ast.parse

    @functools.wraps(parse)
    def serialised(*args, **kwargs):
        with lock:
            return parse(*args, **kwargs)

    serialised.serialised = True
    ast.parse = serialised
