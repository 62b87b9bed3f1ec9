"""The REST API's lines in the instance's audit log (``log/audit.log``, :mod:`redpss.audit`).

Written by every gunicorn worker: each line is one ``write`` on a file opened with
``O_APPEND``, so lines of different processes never interleave. The caller is the token
(``user``: ``token:NAME``; ``-`` when no valid token was given), ``command`` the request
(``POST /api/suspend``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from redpss.audit import append_record, build_record

__all__ = ["write_audit"]


def write_audit(path: Path, *, who: str, what: str, result: str, **extra: Any) -> None:
    """Append the record of one API action to ``path``: ``who`` is the token's name."""
    code = 0 if result == "ok" else 1
    record = build_record(
        tool="rest", command=what, result=result, exit_code=code,
        user=f"token:{who}" if who != "-" else "-", **extra,
    )  # fmt: skip
    append_record(path, record)
