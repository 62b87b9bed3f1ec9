"""``red_params.conf``: the configuration of one instance, parsed into typed, frozen objects.

The file is INI-shaped, with the sections of the product guide:

``[DEFAULT]``
    values for all other sections: ``log_level`` and the ``exa_*`` connection, plus our
    ``dictionary`` key (``sqlite``, the embedded default, or ``exasol``).
``[redsys]``
    the server processes: ``sched_*``, ``sendmail_*``, ``sendfile_*``, ``dbls_*``, ``jexec_*``,
    ``cfi_*``, ``json2csv_*``, ``parq2csv_*``, ``mail2csv_*``, ``log_retention``, ``log_level``.
``[redinfo]``
    ``log_level`` for redinfo.
``[rest]``
    the REST API: ``rest_enabled``, its own ``exa_username``/``exa_password`` (technical user),
    ``log_level``, ``gu_host``, ``gu_port``, ``gu_workers``.

Everything is checked at once and every problem is reported with file, line, section and key:
an unknown section or key, a value of the wrong type, a required value that is missing. Secret
values (passwords, the instance secret) may be written literally, or as ``env:NAME`` (read from
the environment) or ``file:PATH`` (read from a file; relative paths are relative to the folder of
the configuration file); they are held in :class:`Secret`, whose ``repr`` and ``str`` are masked.

Every default is written once, in the dataclass field below.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from redpss.config.checks import check_consistency
from redpss.config.sections import (
    INHERITED,
    SECTIONS,
    Config,
    DefaultSection,
    LogLevel,
    RedinfoSection,
    RestSection,
    ServerSection,
    field_types,
)
from redpss.errors import ConfigError
from redpss.ini import RawFile, read_ini
from redpss.secret import Secret, read_secret

__all__ = [
    "Config",
    "DefaultSection",
    "LogLevel",
    "RedinfoSection",
    "RestSection",
    "ServerSection",
    "load_config",
    "parse_config",
]


# --------------------------------------------------------------------------- converting values


def _to_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _to_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None


def _to_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None


def _to_enum(kind: type[enum.Enum], text: str) -> enum.Enum:
    for member in kind:
        if str(member.value).lower() == text.lower():
            return member
    allowed = ", ".join(str(m.value) for m in kind)
    raise ValueError(f"expected one of {allowed}, got {text!r}")


def _convert(kind: Any, text: str, base: Path, env: Mapping[str, str]) -> Any:
    if kind is bool:
        return _to_bool(text)
    if kind is int:
        return _to_int(text)
    if kind is float:
        return _to_float(text)
    if kind is Secret:
        return read_secret(text, base, env)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return _to_enum(kind, text)
    if kind is str:
        return text
    raise TypeError(f"no converter for {kind!r}")  # a programming error, not a user error


# --------------------------------------------------------------------------- building sections


def _build_section(
    cls: type[Any],
    raw: RawFile,
    where: str,
    base: Path,
    env: Mapping[str, str],
    errors: list[str],
) -> Any:
    name: str = cls.SECTION
    entries = dict(raw.sections.get(name, {}))
    if name != "DEFAULT":
        for key in INHERITED:
            if key not in entries and key in raw.sections["DEFAULT"]:
                entries[key] = raw.sections["DEFAULT"][key]
    kinds = field_types(cls)
    values: dict[str, Any] = {}
    for key, entry in entries.items():
        if key not in kinds:
            continue  # unknown keys are reported once, by _check_unknown
        try:
            values[key] = _convert(kinds[key], entry.value, base, env)
        except ValueError as exc:
            errors.append(f"{where}, line {entry.line}: [{name}] {key}: {exc}")
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.name not in entries
    ]
    for key in missing:
        line = raw.section_lines.get(name, 0)
        at = f"line {line}" if line else "no such section"
        errors.append(f"{where}, {at}: [{name}] {key} is required but not set")
    if missing or any(k in kinds and k not in values for k in entries):
        return None
    return cls(**values)


def _check_unknown(raw: RawFile, where: str, errors: list[str]) -> None:
    known_sections = {cls.SECTION: set(field_types(cls)) for cls in SECTIONS}
    for section, entries in raw.sections.items():
        if section not in known_sections:
            line = raw.section_lines[section]
            allowed = ", ".join(f"[{s}]" for s in known_sections)
            errors.append(f"{where}, line {line}: unknown section [{section}] (known: {allowed})")
            continue
        for key, entry in entries.items():
            if key not in known_sections[section]:
                errors.append(f"{where}, line {entry.line}: [{section}] unknown key {key!r}")


def parse_config(text: str, *, path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Parse the text of a ``red_params.conf``; raise :class:`ConfigError` listing every problem."""
    where = str(path)
    env = os.environ if env is None else env
    errors: list[str] = []
    raw = read_ini(text, where, errors)
    _check_unknown(raw, where, errors)
    base = path.parent
    built = [_build_section(cls, raw, where, base, env, errors) for cls in SECTIONS]
    if errors or any(b is None for b in built):
        raise ConfigError("red_params.conf refused:\n  " + "\n  ".join(errors))
    cfg = Config(path, *built)
    check_consistency(cfg, raw, where, errors)
    if errors:
        raise ConfigError("red_params.conf refused:\n  " + "\n  ".join(errors))
    return cfg


def load_config(path: Path, *, env: Mapping[str, str] | None = None) -> Config:
    """Read and parse ``path``; a missing or unreadable file is a :class:`ConfigError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text at byte {exc.start}") from exc
    return parse_config(text, path=path, env=env)
