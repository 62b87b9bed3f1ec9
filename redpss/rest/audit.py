"""The audit log of the REST API: one JSON line per action (who, what, when, result).

Written by every gunicorn worker and by ``restctl token``: each line is one ``write`` on a file
opened with ``O_APPEND``, so lines of different processes never interleave.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["write_audit"]


def write_audit(path: Path, *, who: str, what: str, result: str, **extra: Any) -> None:
    """Append one record ``{"time", "who", "what", "result", ...}`` to ``path``."""
    record = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "who": who,
        "what": what,
        "result": result,
        **extra,
    }
    line = (json.dumps(record, default=str) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
