"""The landing zone's area of the dictionary: loader definitions, target tables, the ledger.

**Where the ledger lives.** "A file's ledger row commits in the same transaction as its rows"
needs the ledger in the same transactional unit as the target table. On Exasol that is the
whole database; in the embedded dictionary each schema is its own SQLite file, and a
transaction across ATTACHed files is *not* atomic in WAL mode. So every target schema keeps
its part of the ledger in ``<schema>.ADM_LOAD_LOG`` (written with the rows), and the ledger of
the instance, ``REDSYS.ADM_LOAD_LEDGER``, is offered as the union over all schemas
(:meth:`LandingStore.load_ledger`), as ``ALL_LOG_MESSAGES`` is for ``LOG_MESSAGES``.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from redpss.dictionary.loaders import Loader
from redpss.errors import DictionaryError

__all__ = ["DUPLICATE", "LOADED", "ImportSource", "LandingStore", "LedgerEntry", "LoadOutcome"]

LOADED = "LOADED"
DUPLICATE = "DUPLICATE"


@dataclass(frozen=True)
class LedgerEntry:
    """One row of the load ledger: a claimed file and what became of it."""

    claim_id: str
    content_sha256: str
    file_name: str
    file_size: int
    target: str
    loader: str
    run_id: int
    status: str = LOADED
    row_count: int = 0
    loaded_at: datetime | None = None


@dataclass(frozen=True)
class LoadOutcome:
    """What :meth:`LandingStore.load_rows` did.

    ``status`` is ``LOADED`` (rows and ledger row committed), ``DUPLICATE`` (the same content
    was loaded into the same target before: policy SKIP wrote a DUPLICATE ledger row, policy
    ERROR wrote nothing) — ``previous`` is then that earlier ledger row.
    """

    status: str
    rows: int
    previous: LedgerEntry | None = None


@dataclass(frozen=True)
class ImportSource:
    """Where the database reads a claimed file itself (``method = "import"``): cfisrv's
    ``work/`` folder as ``ftp://host:port/work/`` (explicit TLS), its user and password, and the
    pin of its certificate's public key (``sha256//`` + base64), which the database checks
    from Exasol 8.32 on."""

    url: str
    user: str
    password: str = field(repr=False)
    public_key: str | None = None


class LandingStore(abc.ABC):
    """Loader definitions, target tables and the load ledger."""

    # -- loader definitions ------------------------------------------------------------------

    @abc.abstractmethod
    def upsert_loader(self, loader: Loader) -> bool:
        """Create or replace loader ``loader.name`` and its columns; True when it was new."""

    @abc.abstractmethod
    def loader(self, name: str) -> Loader | None:
        """The loader called ``name``, or None."""

    @abc.abstractmethod
    def loaders(self, *, active_only: bool = False) -> list[Loader]:
        """Every loader, sorted by name."""

    @abc.abstractmethod
    def delete_loader(self, name: str) -> bool:
        """Delete a loader and its columns; True when it existed."""

    # -- target tables and rows --------------------------------------------------------------

    @abc.abstractmethod
    def ensure_target_table(self, loader: Loader) -> None:
        """Create ``loader.target`` from the column mapping (and its schema) when missing.

        An existing table must have the mapped columns; otherwise DictionaryError names the
        missing ones.
        """

    @contextmanager
    def load_session(self, loader: Loader) -> Iterator[None]:
        """Hold what the loads of one run into ``loader.target`` can share (e.g. a connection).

        Each :meth:`load_rows` inside still commits on its own. The default holds nothing.
        """
        del loader
        yield

    @abc.abstractmethod
    def load_rows(
        self,
        loader: Loader,
        rows: Iterable[Sequence[object]],
        *,
        entry: LedgerEntry,
    ) -> LoadOutcome:
        """Insert ``rows`` into ``loader.target`` and ``entry`` into the ledger, atomically.

        ``rows`` is consumed lazily (bounded memory); an exception raised while iterating rolls
        everything back and propagates. The duplicate check (same content, same target, status
        LOADED) runs inside the same transaction, following ``loader.duplicates``: SKIP records
        a DUPLICATE ledger row and inserts nothing, LOAD loads again, ERROR records nothing.
        """

    def load_file(
        self,
        loader: Loader,
        *,
        file_name: str,
        positions: Sequence[int],
        source: ImportSource,
        entry: LedgerEntry,
    ) -> LoadOutcome:
        """Let the database read ``file_name`` from ``source`` into ``loader.target`` itself
        (the columns from CSV fields ``positions``), with ``entry`` in the ledger, atomically;
        duplicates as :meth:`load_rows`. Only a database that can reach cfisrv can: this
        default raises DictionaryError."""
        raise DictionaryError(
            f"loader {loader.name}: method = import needs dictionary = exasol (the database "
            "reads the file from cfisrv); this dictionary can only take rows (method = transport)"
        )

    @abc.abstractmethod
    def target_row_count(self, schema: str, table: str) -> int:
        """Rows in ``schema.table`` (0 when it does not exist); for tests and benches."""

    # -- the ledger --------------------------------------------------------------------------

    @abc.abstractmethod
    def find_claim(self, claim_id: str) -> LedgerEntry | None:
        """The ledger row of claim ``claim_id`` in any schema, or None (never committed)."""

    @abc.abstractmethod
    def find_content(self, content_sha256: str, target: str) -> LedgerEntry | None:
        """The first LOADED ledger row of this content into ``target``, or None."""

    @abc.abstractmethod
    def load_ledger(self, limit: int | None = 100) -> list[LedgerEntry]:
        """``REDSYS.ADM_LOAD_LEDGER``: ledger rows of every schema, newest first."""
