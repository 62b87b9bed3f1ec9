"""What differs between the Exasol versions redpss supports: one object per database version.

The database tells its version when a session logs in (pyexasol's ``login_info``,
``releaseVersion``: ``7.1.29``, ``8.32.0``, ``2025.1.3`` …); :class:`Dialect` turns it into the
few things that differ, so that no other module compares version numbers:

- **TIMESTAMP precision** (changelog 13409, Exasol 8.32.0): from 8.32 a timestamp column may
  declare its fractional digits; ``TIMESTAMP(6)`` keeps microseconds, as the SQLite backend
  does. Before 8.32 (7.1 and 8.0 to 8.31) ``TIMESTAMP(p)`` is a syntax error and ``TIMESTAMP``
  holds milliseconds: DDL says ``TIMESTAMP`` and every timestamp literal and value the backend
  writes is cut to milliseconds (truncated, never rounded up into the next second).
- **Certificates of file connections** (changelog 16273, Exasol 8.32.0; on by default from
  2025.1, changelog 25090): from 8.32 an ``IMPORT … FROM CSV AT 'ftp://…'`` may carry
  ``PUBLIC KEY 'sha256//…'`` and the database verifies the server's certificate against it.

Versions below 7.1 are refused: 7.1 is the oldest release whose SQL this package was written
against (docs/dictionary.md has the table of versions and features with their sources).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from redpss.errors import DictionaryError

__all__ = [
    "MIN_VERSION",
    "PUBLIC_KEY_SINCE",
    "TIMESTAMP_PRECISION_SINCE",
    "DbVersion",
    "Dialect",
]

_VERSION_RE = re.compile(r"\s*(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True, order=True)
class DbVersion:
    """An Exasol release number; ordered (``2025.1.0`` is newer than ``8.34.0``)."""

    major: int
    minor: int
    patch: int = 0
    text: str = field(default="", compare=False)

    @classmethod
    def parse(cls, text: str) -> DbVersion:
        """``DbVersion`` of a release string; ValueError when it has no ``major.minor``."""
        m = _VERSION_RE.match(text or "")
        if m is None:
            raise ValueError(f"{text!r} is not an Exasol release number")
        major, minor, patch = (int(g) if g else 0 for g in m.groups())
        return cls(major, minor, patch, text.strip())

    def __str__(self) -> str:
        return self.text or f"{self.major}.{self.minor}.{self.patch}"


MIN_VERSION = DbVersion(7, 1, 0)
TIMESTAMP_PRECISION_SINCE = DbVersion(8, 32, 0)
"""``TIMESTAMP(p)``: changelog 13409, "Extended Timestamp Fractional Seconds Precision"."""
PUBLIC_KEY_SINCE = DbVersion(8, 32, 0)
"""``PUBLIC KEY 'sha256//…'`` in IMPORT/EXPORT of files: changelog 16273."""


@dataclass(frozen=True)
class Dialect:
    """The SQL of one Exasol version, as far as it differs for redpss."""

    version: DbVersion

    @classmethod
    def of(cls, release: str, *, dsn: str = "the database") -> Dialect:
        """The dialect of release ``release``; DictionaryError below 7.1 or if unreadable."""
        try:
            version = DbVersion.parse(release)
        except ValueError as exc:
            raise DictionaryError(f"{dsn}: cannot tell the Exasol version: {exc}") from None
        if version < MIN_VERSION:
            raise DictionaryError(
                f"{dsn} runs Exasol {version}; redpss needs Exasol {MIN_VERSION.major}."
                f"{MIN_VERSION.minor} or newer (docs/dictionary.md, 'Exasol versions')"
            )
        return cls(version)

    @property
    def fraction_digits(self) -> int:
        """Fractional digits a dictionary TIMESTAMP keeps: 6 from 8.32, else 3."""
        return 6 if self.version >= TIMESTAMP_PRECISION_SINCE else 3

    @property
    def timestamp_type(self) -> str:
        """The DDL type of a dictionary or loader TIMESTAMP column."""
        return "TIMESTAMP(6)" if self.fraction_digits == 6 else "TIMESTAMP"

    @property
    def timestamp_format(self) -> str:
        """The format model of a timestamp value with :attr:`fraction_digits` digits."""
        return f"YYYY-MM-DD HH24:MI:SS.FF{self.fraction_digits}"

    @property
    def public_key(self) -> bool:
        """Whether a file IMPORT may (and from 2025.1 must) pin the server's public key."""
        return self.version >= PUBLIC_KEY_SINCE

    def __str__(self) -> str:
        return f"Exasol {self.version}"


NEWEST = Dialect(TIMESTAMP_PRECISION_SINCE)
"""The dialect of 8.32: what SQL text is rendered for when no database says otherwise (the
unit tests that only parse statements)."""
