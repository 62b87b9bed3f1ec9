"""The audit log: one JSON line per state-changing command, whoever gave it.

``$REDENV_HOME/log/audit.log`` of an instance (``$REDHOME/log/audit.log`` for what concerns the
host: ``redsysctl install``) gets one line per state-changing command of ``redctl``,
``redsysctl``, ``restctl`` and the REST API::

    {"time": "2025-03-01T10:00:00.123+00:00", "user": "redsys", "sudo_user": "alice",
     "host": "red01", "tool": "redctl", "command": "config set",
     "args": ["config", "set", "redsys.sendmail_smtp_pass", "********"],
     "result": "ok", "exit_code": 0}

``user`` is the login of the process (``token:NAME`` for the REST API), ``sudo_user`` who
``sudo``-ed to it (the guide's ``sudo su - redsys``), ``via`` the tool that called this one
(``redsysctl start`` runs the instance's ``redctl start``: one line, tool ``redctl``, via
``redsysctl``). Secret values among the arguments are masked (:func:`mask_args`).

Every line is one ``write`` on a file opened with ``O_APPEND``, so lines of concurrent
processes (gunicorn workers, two operators) never interleave. A line that cannot be written
(full disk) is reported on stderr and in the caller's log; it never changes the command's own
result, which already happened. :func:`read_records` skips a torn line and counts it.

Other modules write through :func:`write_record` (or :func:`audited` around a CLI command);
``redctl audit`` reads through :func:`read_records`.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import re
import socket
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from redpss.errors import RedpssError

__all__ = [
    "AUDIT_FILE",
    "MASK",
    "VIA_ENV",
    "AuditRead",
    "append_record",
    "audit_path",
    "audited",
    "build_record",
    "current_user",
    "is_secret_key",
    "mask_args",
    "parse_since",
    "read_records",
    "write_record",
]

log = logging.getLogger(__name__)

AUDIT_FILE = "audit.log"
MASK = "********"
VIA_ENV = "REDPSS_AUDIT_VIA"
"""Set by a tool for the tools it runs, so their line says who called them."""

_SECRET_WORD_RE = re.compile(r"(pass|secret|token|credential|private)", re.IGNORECASE)
_SECRET_OPTIONS = frozenset({"--password", "--pass", "--secret", "--token"})


def audit_path(log_dir: Path) -> Path:
    """``<log_dir>/audit.log``: an instance's ``log/`` or the host's ``$REDHOME/log``."""
    return log_dir / AUDIT_FILE


def is_secret_key(name: str) -> bool:
    """Whether a configuration key or option names a secret (``sendmail_smtp_pass``,
    ``pss_secret``, ``redsys.cfi_password``, ``--token``)."""
    return bool(_SECRET_WORD_RE.search(name.rsplit(".", 1)[-1]))


def _is_reference(value: str) -> bool:
    # env:NAME and file:PATH say where a secret is, not what it is
    return value.startswith(("env:", "file:"))


def mask_args(args: Sequence[str]) -> list[str]:
    """``args`` with every secret value replaced by ``********``.

    Masked: ``KEY=VALUE`` and ``--opt=VALUE`` whose key names a secret; the value after
    ``--password``/``--secret``/``--token``; the value after a secret key given as a word
    (``config set sendmail_smtp_pass VALUE``). ``env:NAME`` and ``file:PATH`` stay: they say
    where the secret is, not what it is.
    """
    out: list[str] = []
    mask_next = False
    for arg in args:
        if mask_next:
            # "" clears the secret, "-" reads it from stdin: neither is the secret
            out.append(arg if _is_reference(arg) or arg in ("", "-") else MASK)
            mask_next = False
            continue
        key, eq, value = arg.partition("=")
        if eq and is_secret_key(key.lstrip("-")):
            out.append(f"{key}={value if _is_reference(value) else MASK}")
            continue
        out.append(arg)
        if arg in _SECRET_OPTIONS or (
            not arg.startswith("-") and "=" not in arg and is_secret_key(arg) and "_" in arg
        ):
            mask_next = True
    return out


def current_user() -> str:
    """The login name of this process's user (its uid when it has none)."""
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def build_record(
    *,
    tool: str,
    command: str,
    args: Sequence[str] = (),
    result: str,
    exit_code: int,
    user: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One audit record (see the module docstring); ``args`` are masked here."""
    record: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "user": user or current_user(),
    }
    sudo_user = os.environ.get("SUDO_USER")
    if sudo_user and sudo_user != record["user"]:
        record["sudo_user"] = sudo_user
    record["host"] = socket.gethostname()
    record["tool"] = tool
    via = os.environ.get(VIA_ENV)
    if via and via != tool:
        record["via"] = via
    record.update(
        command=command, args=mask_args(args), result=result, exit_code=exit_code, **extra
    )
    return record


def append_record(path: Path, record: dict[str, Any]) -> bool:
    """Append ``record`` as one line to ``path`` (one ``O_APPEND`` write, mode 0640).

    False (after saying why on stderr and in the log) when it could not be written.
    """
    line = (json.dumps(record, default=str, ensure_ascii=False) + "\n").encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as exc:
        log.error("audit line not written to %s: %s: %s", path, record.get("command"), exc)
        print(f"warning: audit line not written to {path}: {exc.strerror}", file=sys.stderr)
        return False
    return True


def write_record(log_dir: Path, **fields: Any) -> dict[str, Any] | None:
    """Append one audit line (fields of :func:`build_record`) to ``<log_dir>/audit.log``.

    Returns the record written, or None when it could not be written: the command's own
    result stands, the failure is reported on stderr and in the log.
    """
    record = build_record(**fields)
    return record if append_record(audit_path(log_dir), record) else None


def audited(
    log_dir: Path | None,
    *,
    tool: str,
    command: str,
    args: Sequence[str],
    action: Callable[[], int],
    codes: Sequence[tuple[type[RedpssError], int]] = (),
) -> int:
    """Run a CLI command's ``action`` and write its audit line with the exit code.

    A :class:`~redpss.errors.RedpssError` is written as ``error: <message>`` with its exit
    code (the first of ``codes`` whose type matches, else the error's ``exit_code`` attribute,
    else 1) and raised on: the CLI prints it. Ctrl-C is ``interrupted`` (130). The line is
    written when ``log_dir`` exists after the action (``redsysctl create`` makes it); ``log_dir``
    None runs the action without a line.
    """
    if log_dir is None:
        return action()

    def write(result: str, code: int) -> None:
        if log_dir.is_dir():
            write_record(
                log_dir, tool=tool, command=command, args=args, result=result, exit_code=code
            )

    try:
        code = action()
    except RedpssError as exc:
        found = next((c for kind, c in codes if isinstance(exc, kind)), None)
        write(f"error: {exc}", found if found is not None else int(getattr(exc, "exit_code", 1)))
        raise
    except KeyboardInterrupt:
        write("interrupted", 130)
        raise
    write("ok" if code == 0 else "failed", code)
    return code


_SINCE_RE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """``--since``: ``30m``, ``2h``, ``7d``, ``1w`` ago, or an ISO date/time (UTC if naive).

    ValueError names what is accepted.
    """
    now = now or datetime.now(UTC)
    m = _SINCE_RE.match(text.strip().lower())
    if m:
        return now - timedelta(**{_UNITS[m[2]]: int(m[1])})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since {text!r}: give an age (30m, 2h, 7d, 1w) or a date/time "
            "(2025-03-01 or 2025-03-01T10:00)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass
class AuditRead:
    """What :func:`read_records` found: the records that match, and torn lines skipped."""

    records: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0


def _matches(
    rec: dict[str, Any], since: datetime | None, user: str | None, cmd: str | None
) -> bool:
    if since is not None:
        try:
            if datetime.fromisoformat(str(rec.get("time"))) < since:
                return False
        except ValueError:
            return False
    if user is not None and user not in (rec.get("user"), rec.get("sudo_user")):
        return False
    return cmd is None or str(rec.get("command", "")).startswith(cmd)


def read_records(
    paths: Iterable[Path],
    *,
    since: datetime | None = None,
    user: str | None = None,
    command: str | None = None,
) -> AuditRead:
    """The records of the audit files ``paths`` (oldest first) that match every filter.

    ``user`` matches ``user`` or ``sudo_user``; ``command`` is a prefix (``config`` matches
    ``config set``). A missing file is no record; a line that is not a JSON object is counted
    in ``skipped``.
    """
    found = AuditRead()
    for path in paths:
        for rec in _lines(path, found):
            if _matches(rec, since, user, command):
                found.records.append(rec)
    found.records.sort(key=lambda r: str(r.get("time", "")))
    return found


def _lines(path: Path, found: AuditRead) -> Iterator[dict[str, Any]]:
    try:
        fh = path.open(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    except OSError as exc:
        raise RedpssError(f"{path}: cannot read the audit log: {exc.strerror}") from exc
    with fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                found.skipped += 1
                continue
            if isinstance(rec, dict):
                yield rec
            else:
                found.skipped += 1
