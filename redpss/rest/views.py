"""Read-only views the API shows besides the dictionary: the landing zone, the mail spool and
a run's lines in the instance's logs.

They only look at folders (``docs/landing.md``, ``docs/services.md``); nothing here moves a file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from redpss.instance import Instance
from redpss.mail.spool import FOLDERS as SPOOL_FOLDERS
from redpss.mail.spool import Spool

__all__ = [
    "LANDING_FOLDERS",
    "landing_counts",
    "landing_errors",
    "run_log_lines",
    "sendmail_counts",
    "sendmail_mails",
]

# a run's log lines are looked for in files of at most this size (a day of a busy sched.log)
LOG_SCAN_BYTES = 64 * 1024 * 1024

LANDING_FOLDERS = ("input", "work", "error", "archive")
SIDECAR = ".error.json"


def _landing(inst: Instance) -> Path:
    return inst.home / "data"


def landing_counts(inst: Instance) -> dict[str, int]:
    """Files per landing folder (``error/`` without the sidecars); a missing folder counts 0."""
    counts = {}
    for name in LANDING_FOLDERS:
        folder = _landing(inst) / name
        try:
            entries = [p for p in folder.iterdir() if not p.is_dir()]
        except FileNotFoundError:
            entries = []
        counts[name] = sum(1 for p in entries if not p.name.endswith(SIDECAR))
    return counts


def landing_errors(inst: Instance, *, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    """Rejected files, newest first, with the reason from their ``*.error.json`` sidecar."""
    folder = _landing(inst) / "error"
    try:
        sidecars = [p for p in folder.iterdir() if p.name.endswith(SIDECAR)]
    except FileNotFoundError:
        return []
    sidecars.sort(key=lambda p: (p.stat().st_mtime, p.name), reverse=True)
    rows = []
    for path in sidecars[offset : offset + limit]:
        name = path.name[: -len(SIDECAR)]
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            doc = {"reason": f"sidecar not readable: {exc}"}
        if not isinstance(doc, dict):
            doc = {"reason": f"sidecar holds {type(doc).__name__}, not an object"}
        rows.append({
            "name": name,
            "present": (folder / name).exists(),
            "reason": str(doc.get("reason", "")),
            "loader": doc.get("loader"),
            "claim_id": doc.get("claim_id"),
            "time": doc.get("time"),
            "line": doc.get("line"),
            "byte": doc.get("byte"),
        })  # fmt: skip
    return rows


def sendmail_counts(inst: Instance) -> dict[str, int]:
    """Mails per spool folder of SENDMAIL (``queue`` is what waits for delivery)."""
    root = inst.home / "spool" / "sendmail"
    counts = {}
    for name in SPOOL_FOLDERS:
        try:
            counts[name] = sum(1 for _ in (root / name).glob("*.mail"))
        except OSError:
            counts[name] = 0
    return counts


def sendmail_mails(inst: Instance, *, limit: int = 50) -> list[dict[str, Any]]:
    """The mails waiting (``queue``: attempts, last error, next try) and given up (``dead``:
    the reason), newest first, at most ``limit`` of each."""
    root = inst.home / "spool" / "sendmail"
    if not root.is_dir():
        return []
    spool = Spool(root)
    rows: list[dict[str, Any]] = []
    for folder in ("queue", "dead"):
        for mail_id in reversed(spool.ids(folder)[-limit:]):
            try:
                head = spool.header(folder, mail_id)
            except (OSError, ValueError):
                continue  # moved on meanwhile
            row = {
                "folder": folder,
                "id": mail_id,
                "from": head.get("from"),
                "rcpt": head.get("rcpt"),
                "subject": head.get("subject"),
                "queued_at": head.get("queued_at"),
            }
            if folder == "queue":
                tries = spool.tries(mail_id)
                row.update(attempts=tries.get("attempts"), last_error=tries.get("last_error"))
            else:
                row["reason"] = spool.reason(mail_id)
            rows.append(row)
    return rows


def run_log_lines(inst: Instance, run_id: int, *, limit: int = 200) -> list[str]:
    """The lines of the instance's role logs (``log/*.log`` and their rotated files) that name
    run ``run_id`` (``run=<id>``), oldest first, at most the last ``limit``."""
    pattern = re.compile(rf"\brun={run_id}\b".encode())
    found: list[tuple[float, list[str]]] = []
    for path in inst.log_dir.glob("*.log*"):
        try:
            if not path.is_file() or path.stat().st_size > LOG_SCAN_BYTES:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        if pattern.search(data) is None:
            continue
        lines = [ln.decode("utf-8", "replace") for ln in data.splitlines() if pattern.search(ln)]
        found.append((path.stat().st_mtime, lines))
    merged = sorted(line for _, lines in found for line in lines)  # lines start with their time
    return merged[-limit:]
