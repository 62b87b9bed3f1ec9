"""A line-tracking reader of INI files: sections, ``key = value`` lines, their line numbers.

:mod:`configparser` cannot say on which line a key stands, and merges ``[DEFAULT]`` into every
section; ``red_params.conf`` needs both the line for its error messages and the raw sections
to refuse unknown keys. Problems are collected, not raised, so that a file is reported whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Entry", "RawFile", "read_ini"]


@dataclass
class Entry:
    """One ``key = value`` line."""

    value: str
    line: int


@dataclass
class RawFile:
    """The sections of a file (``DEFAULT`` always present) and the line of each header."""

    sections: dict[str, dict[str, Entry]]
    section_lines: dict[str, int]


_SECTION_RE = re.compile(r"^\[(?P<name>[^\]]+)\]\s*$")
_KEY_RE = re.compile(r"^(?P<key>[A-Za-z0-9_.\-]+)\s*[=:]\s?(?P<value>.*)$")


def read_ini(text: str, where: str, errors: list[str]) -> RawFile:
    """Read ``text``; append a message naming ``where`` and the line for every problem."""
    raw = RawFile(sections={"DEFAULT": {}}, section_lines={"DEFAULT": 0})
    current: str | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        if m := _SECTION_RE.match(stripped):
            current = m["name"].strip()
            if current in raw.sections and raw.section_lines.get(current):
                errors.append(f"{where}, line {lineno}: section [{current}] appears twice")
            raw.sections.setdefault(current, {})
            raw.section_lines[current] = lineno
            continue
        m = _KEY_RE.match(stripped)
        if m is None:
            errors.append(f"{where}, line {lineno}: cannot read this line: {stripped!r}")
            continue
        if current is None:
            errors.append(f"{where}, line {lineno}: key {m['key']!r} before any [section]")
            continue
        key = m["key"].lower()
        if key in raw.sections[current]:
            first = raw.sections[current][key].line
            errors.append(
                f"{where}, line {lineno}: [{current}] {key} is set twice (first on line {first})"
            )
            continue
        raw.sections[current][key] = Entry(_strip_inline_comment(m["value"]), lineno)
    return raw


def _strip_inline_comment(value: str) -> str:
    # " # comment" after a value is a comment; a '#' inside a value (no space before) is kept
    for marker in (" #", " ;", "\t#", "\t;"):
        idx = value.find(marker)
        if idx >= 0:
            value = value[:idx]
    return value.strip()
