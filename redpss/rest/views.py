"""Read-only views the API shows besides the dictionary: the landing zone and the mail spool.

They only look at folders (``docs/landing.md``, ``docs/services.md``); nothing here moves a file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from redpss.instance import Instance
from redpss.mail.spool import FOLDERS as SPOOL_FOLDERS

__all__ = ["LANDING_FOLDERS", "landing_counts", "landing_errors", "sendmail_counts"]

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
