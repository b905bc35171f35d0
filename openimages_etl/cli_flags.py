"""argparse flags generated from the option models (options.py), and the models built back from the parsed flags.

A field `per_subset` becomes `--per-subset` with the field's description as its help; a bool that defaults to True
becomes `--no-NAME`; an enum offers its values; a tuple takes a comma-separated list; a dict takes JSON. A required
field is positional. A nested model's fields take its name as prefix (`--dest-options`), a location's URL takes the
name alone (DEST, `--work`), and a `Flag(flat=True)` model keeps its fields' own names (`--classes`).
Unset flags are left out, so the defaults stay the model's.
"""

from __future__ import annotations

import argparse
import json
import types
import typing
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from openimages_etl.errors import UsageError
from openimages_etl.options import Flag


@dataclass(frozen=True)
class Option:
    """One field on the command line: its path in the model, flag (or positional name) and argparse arguments."""

    path: tuple[str, ...]
    flag: str
    arguments: dict[str, Any]
    group: str = ""  # a flat model's fields are listed under its name in --help

    @property
    def dest(self) -> str:
        return "option:" + ".".join(self.path)


def options_of(
    model: type[BaseModel],
    only: set[str] | None = None,
    path: tuple[str, ...] = (),
    prefix: str = "",
    required: bool = True,
    about: str = "",
    group: str = "",
) -> list[Option]:
    """The flags of `model`'s fields (of the top-level fields in `only`, when given); `about` describes a nested model
    whose own flag (a location's URL) it is."""
    options = []
    for name, field in model.model_fields.items():
        if only is not None and name not in only:
            continue
        hint = next((m for m in field.metadata if isinstance(m, Flag)), Flag())
        flag = "_".join(part for part in (prefix, name if hint.name is None else hint.name) if part)
        kind = _unwrap(field.annotation)
        positional = required and field.is_required()
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            inner, grouped = ("", name) if hint.flat else (flag, group)
            options += options_of(kind, None, (*path, name), inner, positional, field.description or "", grouped)
            continue
        help_text = f"{prefix.replace('_', '-')}: {field.description}" if prefix else field.description or ""
        help_text = about if hint.name == "" and about else help_text
        if not positional:
            flag = ("--no-" if kind is bool and field.default is True else "--") + flag.replace("_", "-")
        options.append(Option((*path, name), flag, _arguments(field, help_text), group))
    return options


def add_options(
    parser: argparse.ArgumentParser,
    model: type[BaseModel],
    only: set[str] | None = None,
    aliases: dict[str, tuple[str, ...]] | None = None,
    group: str = "",
) -> None:
    """Add `model`'s flags to `parser` (under `group` in --help); `aliases` keeps old spellings working."""
    groups: dict[str, Any] = {}
    for option in options_of(model, only, group=group):
        target = groups.setdefault(option.group, parser.add_argument_group(option.group)) if option.group else parser
        if option.flag.startswith("--"):
            named = {"action", "choices", "metavar"} & set(option.arguments)
            metavar = {} if named else {"metavar": option.path[-1].upper()}
            target.add_argument(
                option.flag,
                *(aliases or {}).get(option.flag, ()),
                dest=option.dest,
                default=argparse.SUPPRESS,
                **{**metavar, **option.arguments},
            )
        else:
            parser.add_argument(option.dest, metavar=option.flag.upper(), **option.arguments)


def parsed_options(args: argparse.Namespace, model: type[BaseModel], only: set[str] | None = None, **given: Any):
    """The model from the flags that were given (plus `given` fields); an invalid value is a usage error naming
    its flag."""
    options = options_of(model, only)
    values: dict[str, Any] = dict(given)
    for option in options:
        if hasattr(args, option.dest):
            *parents, leaf = option.path
            nested = values
            for parent in parents:
                nested = nested.setdefault(parent, {})
            nested[leaf] = getattr(args, option.dest)
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise UsageError("; ".join(_error_text(error, options) for error in exc.errors())) from None


def _error_text(error: dict, options: list[Option]) -> str:
    path = tuple(part for part in error["loc"] if isinstance(part, str))
    named = [o.flag for o in options if path and o.path[: len(path)] == path]
    message = error["msg"].removeprefix("Value error, ")
    return f"{named[0]}: {message}" if named else message


def _arguments(field: FieldInfo, help_text: str) -> dict[str, Any]:
    kind = _unwrap(field.annotation)
    default = None if field.is_required() else field.get_default(call_default_factory=True)
    if kind is bool:
        return {
            "action": "store_false" if default else "store_true",
            "help": f"{help_text} (on unless this flag is given)" if default else help_text,
        }
    default = default.value if isinstance(default, Enum) else default
    shown = "" if default in (None, (), {}, "") else f" (default: {default})"
    if typing.get_origin(kind) in (tuple, list):
        (item, *_) = typing.get_args(kind)
        choices = f": {','.join(e.value for e in item)}" if isinstance(item, type) and issubclass(item, Enum) else ""
        return {"type": _names, "metavar": "A,B", "help": f"{help_text} (comma separated{choices})"}
    if typing.get_origin(kind) is dict or kind is dict:
        return {"type": json_object, "metavar": "JSON", "help": f"{help_text}, as JSON"}
    if isinstance(kind, type) and issubclass(kind, Enum):
        return {"choices": [e.value for e in kind], "help": help_text + shown}
    if kind is int:
        return {"type": int, "metavar": "N", "help": help_text + shown}
    return {"help": help_text + shown}


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> X."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return inner
    return annotation


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value
