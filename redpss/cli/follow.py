"""Follow the ``*.log`` files of a folder on stdout, like ``tail -F``, until Ctrl-C (or until
the reader of a pipe goes away)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from redpss.cli.common import output_closed

__all__ = ["follow_logs"]


def follow_logs(log_dir: Path, *, poll: float = 0.5, limit: float | None = None) -> None:
    """Print what is appended to ``log_dir/*.log`` (new files included) until interrupted."""
    offsets: dict[Path, int] = {p: p.stat().st_size for p in log_dir.glob("*.log")}
    ends = None if limit is None else time.monotonic() + limit
    try:
        while (ends is None or time.monotonic() < ends) and not output_closed():
            for path in sorted(log_dir.glob("*.log")):
                size = path.stat().st_size
                start = offsets.get(path, 0)
                if size < start:  # rotated
                    start = 0
                if size > start:
                    with path.open("rb") as fh:
                        fh.seek(start)
                        chunk = fh.read(size - start)
                    sys.stdout.write(chunk.decode("utf-8", "replace"))
                    sys.stdout.flush()
                offsets[path] = size
            time.sleep(poll)
    except KeyboardInterrupt:
        return
