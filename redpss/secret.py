"""A secret value of red_params.conf: never shown in ``repr``, logs or errors.

A secret remembers where it came from (:attr:`Secret.source`), so that start can refuse one
that other users can read (:func:`redpss.config.secrets.exposed_secrets`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

__all__ = ["Secret", "read_secret"]


class Secret:
    """A secret value: compared and used like a string, never shown in ``repr`` or logs."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str = "") -> None:
        """``source``: ``file:<absolute path>``, ``env:<NAME>``, or empty for a literal value."""
        self._value = value
        self.source = source

    def reveal(self) -> str:
        """Return the secret in clear text (for the one place that needs it)."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('********')" if self._value else "Secret('')"

    __str__ = __repr__


def read_secret(text: str, base: Path, env: Mapping[str, str]) -> Secret:
    """A secret as red_params.conf writes it: ``env:NAME``, ``file:PATH`` (relative to
    ``base``) or the literal text; ValueError says what is missing."""
    if text.startswith("env:"):
        name = text[4:]
        if name not in env:
            raise ValueError(f"environment variable {name} is not set")
        return Secret(env[name], text)
    if text.startswith("file:"):
        path = Path(text[5:]).expanduser()
        path = path if path.is_absolute() else base / path
        try:
            return Secret(path.read_text(encoding="utf-8").strip(), f"file:{path}")
        except OSError as exc:
            raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from None
    return Secret(text)
