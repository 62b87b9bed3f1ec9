"""``red_params.conf`` as an operator changes it: show, get, set, edit, diff, history, rollback.

:mod:`redpss.config` reads the file into typed objects; this module changes its *text*, so
that every comment, blank line and the order of the keys stay as they were: ``set`` replaces
the value on the key's line (keeping an inline comment), or uncomments the template's
``#key = default`` line in its section, or adds the key at the end of its section.

Every change goes the same way (:meth:`ConfFile.save`): the new text is checked whole with
:func:`redpss.config.parse_config` (nothing is written when it is refused: the error names
line and key), the file must not have changed since it was read, the current file is copied to
``etc/backup/red_params.conf.<UTC time>`` (mode 0600), the new text replaces the file
atomically (same mode), and ``etc/backup/history.jsonl`` records who changed which keys.
``rollback N`` is a change like any other (so it can be rolled back too).

Secrets never leave this module in clear: a literal value of a secret key (a :class:`Secret`
field) is shown as ``********`` in ``show``, ``get``, ``diff`` and ``history``; ``env:NAME``
and ``file:PATH`` references are shown, they say where the secret is, not what it is.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redpss import audit
from redpss.config import parse_config
from redpss.config.secrets import exposed_secrets
from redpss.config.sections import KeySpec, key_specs
from redpss.errors import ConfigError
from redpss.ini import read_ini
from redpss.instance import Instance, conf_text, port_base_of

__all__ = [
    "MASK",
    "Backup",
    "ConfFile",
    "Setting",
    "UnknownKey",
    "changed_keys",
    "mask_text",
    "resolve_key",
    "set_text",
]

MASK = audit.MASK
BACKUP_DIR = "backup"
HISTORY = "history.jsonl"
_PREFIX = "red_params.conf."
_STAMP = "%Y-%m-%dT%H-%M-%S.%fZ"
_SPECS = {(s.section, s.key): s for s in key_specs()}
_SECTION_RE = re.compile(r"^\s*\[(?P<name>[^\]]+)\]\s*$")
# a key line: indent, key, separator, value, inline comment (" # …", as redpss.ini reads it),
# line end; blanks only (never the line end) around the separator
_LINE_RE = re.compile(r"^([ \t]*)([A-Za-z0-9_.\-]+)([ \t]*[=:][ \t]?)(.*?)([ \t]+[#;].*)?(\r?\n)?$")


def _key_re(key: str, *, commented: bool) -> re.Pattern[str]:
    # a commented-out key is the template's "#key = default" (a prose comment has no "=")
    if commented:
        return re.compile(r"^\s*[#;]\s*" + re.escape(key) + r"\s*=", re.IGNORECASE)
    return re.compile(r"^\s*" + re.escape(key) + r"\s*[=:]", re.IGNORECASE)


class UnknownKey(ConfigError):
    """A key red_params.conf does not have (exit 2, like an unknown job name)."""

    exit_code = 2


def resolve_key(name: str) -> KeySpec:
    """The key an operator means: ``section.key`` or a bare ``key``.

    A bare key known by one section is that section's; one known by several (``log_level``,
    ``exa_password``) is ``[DEFAULT]``'s, whose value the others inherit. An unknown key is a
    :class:`ConfigError` naming the nearest known ones.
    """
    section, dot, key = name.rpartition(".")
    key = key.lower()
    if dot:
        wanted = next(
            (s for s in ("DEFAULT", "redsys", "redinfo", "rest") if s.lower() == section.lower()),
            section,
        )
        spec = _SPECS.get((wanted, key))
        if spec is not None:
            return spec
    else:
        found = [s for (sec, k), s in _SPECS.items() if k == key]
        if len(found) == 1:
            return found[0]
        if found:
            return _SPECS[("DEFAULT", key)] if ("DEFAULT", key) in _SPECS else found[0]
    names = [f"{sec}.{k}" for sec, k in _SPECS] + sorted({k for _, k in _SPECS})
    near = difflib.get_close_matches(name, names, n=4, cutoff=0.6)
    hint = f"; did you mean: {', '.join(near)}" if near else ""
    raise UnknownKey(
        f"red_params.conf has no key {name!r}{hint} (every key: redctl config show --effective)"
    )


def _shown(spec: KeySpec, value: str) -> str:
    """``value`` as it may be shown: a literal secret masked."""
    if (
        (spec.secret or audit.is_secret_key(spec.key))
        and value
        and not value.startswith(("env:", "file:"))
    ):
        return MASK
    return value


def _default_text(spec: KeySpec) -> str:
    value = spec.default
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or spec.secret:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class Setting:
    """The effective value of one key and where it comes from (``config show --effective``)."""

    section: str
    key: str
    value: str
    source: str
    secret: bool


@dataclass(frozen=True)
class Backup:
    """One earlier version of the file: ``number`` 1 is the version before the current one."""

    number: int
    path: Path
    time: datetime
    user: str
    command: str
    changes: tuple[str, ...]


def mask_text(text: str) -> str:
    """The file's text with every literal secret value replaced by ``********``."""
    out = []
    section = "DEFAULT"
    for line in text.splitlines(keepends=True):
        m = _SECTION_RE.match(line)
        if m:
            section = m["name"].strip()
            out.append(line)
            continue
        km = _LINE_RE.match(line)
        if km and not line.lstrip().startswith(("#", ";")):
            key = km[2].lower()
            spec = _SPECS.get((section, key)) or _SPECS.get(("DEFAULT", key))
            secret = spec.secret if spec else audit.is_secret_key(key)
            value = km[4]
            if secret and value.strip() and not value.strip().startswith(("env:", "file:")):
                line = f"{km[1]}{km[2]}{km[3]}{MASK}{km[5] or ''}{km[6] or ''}"
        out.append(line)
    return "".join(out)


def set_text(text: str, spec: KeySpec, value: str) -> str:
    """``text`` with ``[spec.section] spec.key = value``, everything else as it was."""
    if "\n" in value or "\r" in value:
        raise ConfigError(f"{spec.section}.{spec.key}: a value is one line")
    if re.search(r"\s[#;]", value):
        raise ConfigError(
            f"{spec.section}.{spec.key}: ' #' or ' ;' in a value would start a comment"
        )
    value = value.strip()
    lines = text.splitlines(keepends=True)
    start, end = _section_range(lines, spec.section)
    if start is None:
        sep = "" if not text or text.endswith("\n") else "\n"
        return f"{text}{sep}\n[{spec.section}]\n{spec.key} = {value}\n"
    active, commented = _key_re(spec.key, commented=False), _key_re(spec.key, commented=True)
    for i in range(start, end):
        if active.match(lines[i]):
            lines[i] = _replace_value(lines[i], value)
            return "".join(lines)
    for i in range(start, end):
        if commented.match(lines[i]):
            newline = "\n" if lines[i].endswith("\n") else ""
            lines[i] = f"{spec.key} = {value}{newline}"
            return "".join(lines)
    last = start - 1 if start > 0 else -1
    for i in range(start, end):
        if lines[i].strip() and not lines[i].lstrip().startswith(("#", ";")):
            last = i
    insert_at = last + 1 if last >= 0 else start
    if insert_at > 0 and not lines[insert_at - 1].endswith("\n"):
        lines[insert_at - 1] += "\n"
    lines.insert(insert_at, f"{spec.key} = {value}\n")
    return "".join(lines)


def _section_range(lines: list[str], section: str) -> tuple[int | None, int]:
    """Lines ``[start, end)`` of the section's body; start None when it has no header."""
    start: int | None = None
    for i, line in enumerate(lines):
        m = _SECTION_RE.match(line)
        if not m:
            continue
        if start is not None:
            return start, i
        if m["name"].strip() == section:
            start = i + 1
    return start, len(lines)


def _replace_value(line: str, value: str) -> str:
    m = _LINE_RE.match(line)
    assert m is not None  # the caller matched the key
    sep = m[3] if m[3].endswith((" ", "\t")) or not value else m[3] + " "
    return f"{m[1]}{m[2]}{sep}{value}{m[5] or ''}{m[6] or ''}"


def _values(text: str) -> dict[tuple[str, str], str]:
    raw = read_ini(text, "red_params.conf", [])
    return {(sec, k): e.value for sec, entries in raw.sections.items() for k, e in entries.items()}


def changed_keys(old: str, new: str) -> list[str]:
    """``redsys.stop_grace: 30 -> 60`` for every key whose value differs (secrets masked)."""
    a, b = _values(old), _values(new)
    out = []
    for sec, key in sorted(set(a) | set(b), key=lambda k: (k[0] != "DEFAULT", k)):
        if a.get((sec, key)) == b.get((sec, key)):
            continue
        spec = _SPECS.get((sec, key)) or KeySpec(sec, key, str, None, False, False, False)
        before = "(unset)" if (sec, key) not in a else _shown(spec, a[(sec, key)]) or "''"
        after = "(unset)" if (sec, key) not in b else _shown(spec, b[(sec, key)]) or "''"
        if before == after == MASK:
            before, after = MASK, "******** (changed)"
        out.append(f"{sec}.{key}: {before} -> {after}")
    return out


class ConfFile:
    """The ``red_params.conf`` of one instance, its backups and its history."""

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.path = inst.conf_path
        self.backup_dir = inst.etc / BACKUP_DIR

    # ------------------------------------------------------------------ reading

    def read(self) -> str:
        """The file's text; a missing file names ``redsysctl repair``."""
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                f"{self.path} is missing: recreate a default one with "
                f"redsysctl repair {self.inst.name} (data, logs and secrets stay)"
            ) from None
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot read: {exc.strerror}") from exc

    def effective(self) -> list[Setting]:
        """Every key of every section: its value and where it comes from."""
        text = self.read()
        raw = read_ini(text, str(self.path), [])
        out = []
        for spec in _SPECS.values():
            entry = raw.sections.get(spec.section, {}).get(spec.key)
            inherited = raw.sections["DEFAULT"].get(spec.key) if spec.inherited else None
            if entry is not None:
                value, source = entry.value, f"line {entry.line}"
            elif inherited is not None:
                value, source = inherited.value, f"[DEFAULT] line {inherited.line}"
            elif spec.required:
                value, source = "", "required, not set"
            else:
                value, source = _default_text(spec), "default"
            out.append(Setting(spec.section, spec.key, _shown(spec, value), source, spec.secret))
        return out

    def get(self, name: str) -> Setting:
        """The effective value of one key (``section.key`` or ``key``)."""
        spec = resolve_key(name)
        return next(s for s in self.effective() if (s.section, s.key) == (spec.section, spec.key))

    def backups(self) -> list[Backup]:
        """Earlier versions, newest first (number 1 = the version before the current one)."""
        files = (
            sorted(self.backup_dir.glob(_PREFIX + "*"), reverse=True)
            if self.backup_dir.is_dir()
            else []
        )
        index = self._index()
        out = []
        for number, path in enumerate(files, start=1):
            meta = index.get(path.name, {})
            try:
                when = datetime.strptime(path.name[len(_PREFIX) :], _STAMP).replace(tzinfo=UTC)
            except ValueError:
                continue
            out.append(
                Backup(
                    number,
                    path,
                    when,
                    str(meta.get("user", "?")),
                    str(meta.get("command", "?")),
                    tuple(meta.get("changes", ())),
                )
            )
        return out

    def backup(self, number: int) -> Backup:
        """Backup ``number`` (1 = the latest); ConfigError naming what exists."""
        found = self.backups()
        if not 1 <= number <= len(found):
            have = f"1..{len(found)}" if found else "none yet"
            raise ConfigError(f"no backup {number} of {self.path.name} (backups: {have})")
        return found[number - 1]

    def _index(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        try:
            lines = (self.backup_dir / HISTORY).read_text(encoding="utf-8").splitlines()
        except OSError:
            return out
        for line in lines:
            try:
                rec = json.loads(line)
                out[str(rec["backup"])] = rec
            except (ValueError, KeyError, TypeError):
                continue
        return out

    def default_text(self) -> str:
        """The file a new instance would get, with this instance's ports (``diff --default``)."""
        port = _values(self.read()).get(("redsys", "sched_service_port"), "")
        base = port_base_of(int(port)) if port.isdigit() else 0
        return conf_text(self.inst, base)

    # ------------------------------------------------------------------ diff

    def diff(self, old: str, new: str, old_name: str, new_name: str) -> str:
        """A unified diff of two texts of the file, secrets masked."""
        lines = difflib.unified_diff(
            mask_text(old).splitlines(keepends=True),
            mask_text(new).splitlines(keepends=True),
            fromfile=old_name,
            tofile=new_name,
        )
        return "".join(x if x.endswith("\n") else x + "\n" for x in lines)

    # ------------------------------------------------------------------ changing

    def check(self, text: str) -> None:
        """Refuse ``text`` (ConfigError naming line and key) unless it is a valid file."""
        parse_config(text, path=self.path)

    def _refuse_exposing(self, current: str, new: str) -> None:
        """Refuse ``new`` when it puts a secret where other users can read it (a literal secret
        in a ``red_params.conf`` readable by others, a ``file:`` others can read).

        Written anyway, the secret would lie open until someone noticed, and the next
        ``redctl start`` would refuse the file (:func:`redpss.config.secrets.exposed_secrets`):
        the operator gets that message now, with its fix, and nothing is written. A problem the
        current file has already is not this change's: it does not block other changes.
        """
        added = [p for p in self._exposed(new) if p not in self._exposed(current)]
        if added:
            raise ConfigError(
                "refusing to save: secrets that other users could read (redctl start would "
                "refuse them); nothing was saved\n  " + "\n  ".join(added)
            )

    def _exposed(self, text: str) -> list[str]:
        try:
            return exposed_secrets(parse_config(text, path=self.path))
        except ConfigError:
            return []

    def save(self, new: str, *, expected: str, command: str) -> tuple[Backup | None, list[str]]:
        """Check ``new``, back the current file up, write ``new``; return (backup, changes).

        ``expected`` is the text the change was made from: if the file changed since, nothing
        is written. Unchanged text writes nothing and returns ``(None, [])``.
        """
        self.check(new)
        current = self.read()
        self._refuse_exposing(current, new)
        if _digest(current) != _digest(expected):
            raise ConfigError(
                f"{self.path} was changed by someone else meanwhile; nothing was saved "
                "(look at it with redctl config diff, then try again)"
            )
        if new == current:
            return None, []
        changes = changed_keys(current, new)
        self.backup_dir.mkdir(mode=0o700, exist_ok=True)
        stamp = datetime.now(UTC)
        name = _PREFIX + stamp.strftime(_STAMP)
        _write_private(self.backup_dir / name, current, mode=0o600)
        mode = self.path.stat().st_mode & 0o777
        tmp = self.path.with_name(self.path.name + ".new")
        _write_private(tmp, new, mode=mode)
        tmp.replace(self.path)
        record = {
            "backup": name,
            "time": stamp.isoformat(timespec="milliseconds"),
            "user": audit.current_user(),
            "command": command,
            "changes": changes,
        }
        sudo = os.environ.get("SUDO_USER")
        if sudo:
            record["sudo_user"] = sudo
        with (self.backup_dir / HISTORY).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        return self.backup(1), changes

    def set(self, pairs: list[tuple[str, str]]) -> tuple[list[KeySpec], Backup | None, list[str]]:
        """``config set KEY VALUE [KEY VALUE …]``: keys that depend on each other
        (``sendmail_smtp_user`` needs ``sendmail_smtp_pass``) change together, checked whole
        before anything is written. An error never shows a secret value that was given."""
        specs = [resolve_key(name) for name, _ in pairs]
        current = self.read()
        new = current
        for spec, (_, value) in zip(specs, pairs, strict=True):
            new = set_text(new, spec, value)
        names = " ".join(f"{s.section}.{s.key}" for s in specs)
        try:
            backup, changes = self.save(new, expected=current, command=f"set {names}")
        except ConfigError as exc:
            text = str(exc)
            for spec, (_, value) in zip(specs, pairs, strict=True):
                if value.strip() and _shown(spec, value.strip()) == MASK:
                    text = text.replace(value.strip(), MASK)
            if text == str(exc):
                raise
            raise ConfigError(text) from None
        return specs, backup, changes

    def rollback(self, number: int = 1) -> tuple[Backup, Backup | None, list[str]]:
        """Put backup ``number`` back (the current file is backed up first)."""
        chosen = self.backup(number)
        current = self.read()
        old = chosen.path.read_text(encoding="utf-8")
        try:
            self.check(old)
        except ConfigError as exc:
            raise ConfigError(
                f"backup {number} ({chosen.path.name}) is not valid now; "
                f"nothing was changed:\n  {exc}"
            ) from exc
        backup, changes = self.save(old, expected=current, command=f"rollback {number}")
        return chosen, backup, changes


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _write_private(path: Path, text: str, *, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(path, mode)


def settings_dicts(settings: list[Setting]) -> list[dict[str, Any]]:
    """For ``--json``."""
    return [dataclasses.asdict(s) for s in settings]
