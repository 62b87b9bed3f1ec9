"""Secrets of ``red_params.conf`` that other users of the host can read: found, named with
key, file and the fix, and refused at start.

Apart from parsing (:mod:`redpss.config`) because it looks at the files on disk, not at the
text: a file parses the same whatever its mode, and only starting refuses it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from redpss.config.sections import Config
from redpss.errors import ConfigError
from redpss.secret import Secret

__all__ = ["exposed_secrets", "require_private_secrets"]


def _readable_by_others(path: Path) -> int | None:
    """The mode of ``path`` when any user (not only owner and group) may read or write it."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return None
    return mode if mode & 0o006 else None


def exposed_secrets(cfg: Config) -> list[str]:
    """Secrets other users of the host can read: each with key, file and the fix.

    A secret file (``file:``) and, when it holds a literal secret, ``red_params.conf`` itself
    must not be readable (or writable) by others: whoever reads ``pss_secret`` may call every op
    of every service (docs/protocol.md). ``redctl start`` and every role refuse to start while
    this list is not empty.
    """
    problems = []
    literal: list[str] = []
    for section in (cfg.default, cfg.redsys, cfg.rest):
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            if not isinstance(value, Secret) or not value:
                continue
            key = f"[{section.SECTION}] {f.name}"
            if value.source.startswith("file:"):
                path = Path(value.source[5:])
                mode = _readable_by_others(path)
                if mode is not None:
                    problems.append(
                        f"{key}: secret file {path} can be read or written by other users "
                        f"(mode {mode:04o}); run: chmod 600 {path}"
                    )
            elif not value.source:
                literal.append(key)
    mode = _readable_by_others(cfg.path)
    if literal and mode is not None:
        problems.append(
            f"{', '.join(literal)}: written in {cfg.path}, which other users can read or write "
            f"(mode {mode:04o}); run: chmod 600 {cfg.path} (or give the secret as file: or env:)"
        )
    return problems


def require_private_secrets(cfg: Config) -> None:
    """Refuse (ConfigError naming key, file and fix) when :func:`exposed_secrets` finds any."""
    if problems := exposed_secrets(cfg):
        raise ConfigError(
            "refusing to start: secrets that other users can read\n  " + "\n  ".join(problems)
        )
