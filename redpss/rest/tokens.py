"""Bearer tokens of the REST API: ``restctl token add|list|revoke``, checked on every request.

A token is 32 random bytes (``secrets.token_urlsafe``), shown once when it is added. The file
``$REDENV_HOME/etc/rest_tokens.json`` (mode 0600) keeps per token its name, role, a random salt
and ``sha256(salt + token)``. A fast hash is enough here: the token has 256 bits of entropy, so
there is nothing to guess that a slow hash (scrypt) would protect, and every request checks it.
The API re-reads the file when its modification time changes, so a revoke takes effect at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redpss.errors import RedpssError

__all__ = ["OPERATOR", "READER", "ROLES", "TokenInfo", "TokenStore"]

READER = "reader"
OPERATOR = "operator"
ROLES = (READER, OPERATOR)


@dataclass(frozen=True)
class TokenInfo:
    """One stored token, without its secret."""

    name: str
    role: str
    created: str


def _digest(salt: str, token: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + token.encode()).hexdigest()


class TokenStore:
    """The token file of one instance."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cache: tuple[float, dict[str, dict[str, Any]]] | None = None

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return {}
        if self._cache is not None and self._cache[0] == mtime:
            return self._cache[1]
        try:
            data: dict[str, dict[str, Any]] = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RedpssError(f"{self.path}: token file not readable: {exc}") from exc
        self._cache = (mtime, data)
        return data

    def _write(self, data: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)
        self._cache = None

    def add(self, name: str, role: str) -> str:
        """Store a new token ``name`` with ``role``; return the token (shown once)."""
        if role not in ROLES:
            raise RedpssError(f"unknown role {role!r} (expected one of {', '.join(ROLES)})")
        if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise RedpssError(f"token name {name!r}: use letters, digits, '-', '_' and '.'")
        data = dict(self._read())
        if name in data:
            raise RedpssError(f"a token named {name!r} exists; revoke it first")
        token = secrets.token_urlsafe(32)
        salt = secrets.token_hex(16)
        data[name] = {
            "role": role,
            "salt": salt,
            "sha256": _digest(salt, token),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self._write(data)
        return token

    def revoke(self, name: str) -> bool:
        """Remove token ``name``; return False if there was none."""
        data = dict(self._read())
        if data.pop(name, None) is None:
            return False
        self._write(data)
        return True

    def list(self) -> list[TokenInfo]:
        """Every token, by name."""
        return [
            TokenInfo(name, entry["role"], entry.get("created", ""))
            for name, entry in sorted(self._read().items())
        ]

    def check(self, token: str) -> TokenInfo | None:
        """The token's name and role, or None when it is not known."""
        found = None
        for name, entry in self._read().items():
            # compare every entry (no early exit): the time says nothing about the token
            if hmac.compare_digest(_digest(entry["salt"], token), entry["sha256"]):
                found = TokenInfo(name, entry["role"], entry.get("created", ""))
        return found
