"""Typed request arguments: a frozen dataclass per op, checked once at the edge.

An op's handler is ``op_<name>(self, request: SomeRequest, peer)``; :class:`WireServer` turns
the request's ``args`` object into ``SomeRequest`` with :func:`parse` before the handler runs.
Everything the caller can get wrong is refused there as :class:`~redpss.errors.BadArgs`, naming
the field by its path (``'lines[2].level'``, ``'mail.to[0]'``): unknown names, missing ones,
wrong types, numbers out of range or not whole where a count is meant, strings too long or not
of their pattern. What still raises inside a handler is either BadArgs on purpose (a check that
needs the role's state, e.g. a command that does not exist) or a bug of ours, which the server
logs with its traceback and answers ``internal``.

Field types understood: ``str``, ``int`` (a JSON integer, never a boolean or ``5.0``),
``float`` (any finite JSON number), ``bool``, ``Any``, ``Literal[...]`` of strings, ``list[T]``,
``dict[str, T]``, a nested request dataclass (a JSON object), unions of these (``T | None``
for an optional value; in ``str | list[str]`` the value's JSON shape picks one), and
``Annotated[T, Limits(...)]`` for a named kind of value with limits of its own (a schema
name, a mail address). A field's limits come from :func:`arg`.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal, TypeVar, cast, get_args, get_origin

from redpss.errors import BadArgs

__all__ = ["Limits", "arg", "is_request", "parse"]

T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """What a value must also be: numbers within ``low``..``high``, strings and lists of at
    most ``max_len`` (and at least ``min_len``) items, strings matching ``pattern``."""

    low: float | None = None
    high: float | None = None
    above: float | None = None  # exclusive lower bound ("a positive number")
    min_len: int = 0
    max_len: int | None = None
    pattern: str | None = None
    what: str = ""  # how to say the pattern in an error ("a mail address")


def arg(
    default: Any = dataclasses.MISSING,
    *,
    low: float | None = None,
    high: float | None = None,
    above: float | None = None,
    min_len: int = 0,
    max_len: int | None = None,
    pattern: str | None = None,
    what: str = "",
    factory: Any = dataclasses.MISSING,
) -> Any:
    """A field of a request dataclass with its limits (and its default, if it is optional)."""
    limits = Limits(low, high, above, min_len, max_len, pattern, what)
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata={"limits": limits})
    return dataclasses.field(default=default, metadata={"limits": limits})


def is_request(cls: object) -> bool:
    """True for a dataclass :func:`parse` can build."""
    return isinstance(cls, type) and dataclasses.is_dataclass(cls)


@cache
def _fields(cls: Any) -> tuple[tuple[str, Any, Limits, bool], ...]:
    hints = typing.get_type_hints(cls, include_extras=True)
    out = []
    for f in dataclasses.fields(cls):
        limits = f.metadata.get("limits", Limits())
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        out.append((f.name, hints[f.name], limits, required))
    return tuple(out)


def parse(cls: type[T], args: Mapping[str, Any] | None, *, path: str = "") -> T:
    """Build request ``cls`` from the JSON object ``args``; BadArgs names what is wrong."""
    if args is None:
        args = {}
    fields = _fields(cast(Hashable, cls))
    names = {name for name, _, _, _ in fields}
    if unknown := sorted(set(args) - names):
        known = ", ".join(sorted(names)) or "none"
        where = f" of '{path}'" if path else ""
        raise BadArgs(f"unknown argument(s){where} {', '.join(unknown)} (known: {known})")
    values: dict[str, Any] = {}
    for name, kind, limits, required in fields:
        field = f"{path}.{name}" if path else name
        if name not in args:
            if required:
                raise BadArgs(f"'{field}' is missing")
            continue
        values[name] = _value(args[name], kind, limits, field)
    return cls(**values)


def _value(value: Any, kind: Any, limits: Limits, field: str) -> Any:
    origin = get_origin(kind)
    if origin is Annotated:  # a named kind of value: its own limits (Schema, Address …)
        kind, *extras = get_args(kind)
        limits = next((x for x in extras if isinstance(x, Limits)), limits)
        origin = get_origin(kind)
    if origin in (types.UnionType, typing.Union):
        return _union(value, get_args(kind), limits, field)
    if kind is Any:
        return value
    if kind is type(None):
        if value is not None:
            raise BadArgs(f"'{field}' must be null")
        return None
    if origin is Literal:
        allowed = get_args(kind)
        if value not in allowed:
            raise BadArgs(f"'{field}' must be one of {', '.join(map(str, allowed))}, not {value!r}")
        return value
    if origin is list:
        return _list(value, get_args(kind)[0], limits, field)
    if origin is dict:
        return _dict(value, get_args(kind)[1], limits, field)
    if is_request(kind):
        if not isinstance(value, dict):
            raise BadArgs(f"'{field}' must be an object")
        return parse(kind, value, path=field)
    return _scalar(value, kind, limits, field)


def _union(value: Any, kinds: tuple[Any, ...], limits: Limits, field: str) -> Any:
    """The first alternative whose JSON shape the value has decides (and says what is wrong)."""
    if value is None and type(None) in kinds:
        return None
    for kind in kinds:
        if kind is not type(None) and _shape(value, kind):
            return _value(value, kind, limits, field)
    names = " or ".join(_name(k) for k in kinds if k is not type(None))
    raise BadArgs(f"'{field}' must be {names}")


def _shape(value: Any, kind: Any) -> bool:
    origin = get_origin(kind)
    if origin is Annotated:
        return _shape(value, get_args(kind)[0])
    if kind is Any:
        return True
    if origin is list:
        return isinstance(value, list)
    if origin is dict or is_request(kind):
        return isinstance(value, dict)
    if origin is Literal:
        return value in get_args(kind)
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, kind) if isinstance(kind, type) else False


def _list(value: Any, item: Any, limits: Limits, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise BadArgs(f"'{field}' must be a list of {_name(item)}")
    _check_length(len(value), limits, field, "entries")
    return [_value(v, item, Limits(), f"{field}[{i}]") for i, v in enumerate(value)]


def _dict(value: Any, item: Any, limits: Limits, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadArgs(f"'{field}' must be an object")
    _check_length(len(value), limits, field, "entries")
    pattern = re.compile(limits.pattern) if limits.pattern else None
    out = {}
    for key, v in value.items():
        if pattern is not None and not pattern.fullmatch(key):
            raise BadArgs(f"'{field}' may not have the key {key!r} ({limits.what or pattern})")
        out[key] = _value(v, item, Limits(), f"{field}.{key}")
    return out


def _scalar(value: Any, kind: Any, limits: Limits, field: str) -> Any:
    if kind is bool:
        if not isinstance(value, bool):
            raise BadArgs(f"'{field}' must be true or false")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadArgs(f"'{field}' must be a whole number, not {value!r}")
        _check_range(value, limits, field)
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadArgs(f"'{field}' must be a number, not {value!r}")
        if not math.isfinite(value):
            raise BadArgs(f"'{field}' must be a finite number")
        _check_range(value, limits, field)
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise BadArgs(f"'{field}' must be a string")
        if "\0" in value:
            raise BadArgs(f"'{field}' must not hold a NUL character")
        _check_length(len(value), limits, field, "characters")
        if limits.pattern and not re.fullmatch(limits.pattern, value):
            raise BadArgs(f"'{field}' must be {limits.what or limits.pattern}, not {value!r}")
        return value
    raise TypeError(f"request field {field!r} has a type parse() does not know: {kind!r}")


def _check_range(value: float, limits: Limits, field: str) -> None:
    if limits.above is not None and value <= limits.above:
        raise BadArgs(f"'{field}' must be above {limits.above:g}, not {value!r}")
    if limits.low is not None and value < limits.low:
        raise BadArgs(f"'{field}' must be at least {limits.low:g}, not {value!r}")
    if limits.high is not None and value > limits.high:
        raise BadArgs(f"'{field}' must be at most {limits.high:g}, not {value!r}")


def _check_length(length: int, limits: Limits, field: str, unit: str) -> None:
    if length < limits.min_len:
        raise BadArgs(
            f"'{field}' must not be empty"
            if limits.min_len == 1
            else f"'{field}' needs at least {limits.min_len} {unit}"
        )
    if limits.max_len is not None and length > limits.max_len:
        raise BadArgs(f"'{field}' has {length} {unit}; at most {limits.max_len}")


def _name(kind: Any) -> str:
    origin = get_origin(kind)
    if origin is Annotated:
        kind, *extras = get_args(kind)
        what = next((x.what for x in extras if isinstance(x, Limits) and x.what), "")
        return what or _name(kind)
    if origin is list:
        return f"a list of {_name(get_args(kind)[0])}"
    if origin is dict or is_request(kind):
        return "an object"
    if origin is Literal:
        return "one of " + ", ".join(map(str, get_args(kind)))
    return {str: "a string", int: "a whole number", float: "a number", bool: "true or false"}.get(
        kind, str(kind)
    )
