"""The landing zone: files from ``data/input`` into the database, once, never lost.

Entry points for the scheduler (``docs/landing.md`` tells the whole story):

* :func:`run_load` — a ``LOAD`` job's run (``ACTION_TEXT`` = loader name), in the loader pool;
* :func:`recover` — at sched start: finish or requeue what a dead process left in ``work/``;
* :func:`complete_files` — for FILE watchers: the files of ``input/`` that are complete;
* :func:`sweep` — periodic: files no loader matches go to ``error/``, old archive/error files
  are deleted after their retention.

**What a run raises.** :class:`~redpss.errors.LoadError` only when it could not work as a whole:
unknown or inactive loader, unusable target table, dictionary or disk failing (the file in hand
goes back to ``input/``), or a rejected file that ``error/`` cannot take (back to ``input/``
too, the message naming file, reason and cause). A bad file is the file's problem: it goes to
``error/`` with its sidecar, is counted in :attr:`LoadResult.errors`, named in the message, and
logged as an ERROR line into the target schema's ``LOG_MESSAGES``; sched's executor then ends
the run FAILED (``redpss.sched.executors``), so the watcher shows the file's error.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from redpss.dictionary.landing import LedgerEntry, LoadOutcome
from redpss.dictionary.loaders import Loader, LoaderColumn, parse_loader
from redpss.errors import DictionaryError, FileRejected, LoadError
from redpss.landing.lifecycle import (
    Claim,
    LandingZone,
    archive,
    claim,
    claim_key,
    complete_files,
    complete_names,
    display_name,
    issued,
    purge_expired,
    reject,
    requeue,
    same_name,
    work_claims,
)
from redpss.landing.opened import Opened, open_regular

if TYPE_CHECKING:
    from redpss.config import Config
    from redpss.dictionary import Dictionary
    from redpss.instance import Instance

__all__ = [
    "LoadResult",
    "Loader",
    "LoaderColumn",
    "complete_files",
    "parse_loader",
    "recover",
    "run_load",
    "sweep",
    "zone_of",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadResult:
    """What one LOAD run did: files loaded, rows inserted, duplicates skipped, files rejected."""

    files: int
    rows: int
    duplicates: int
    errors: int
    message: str


def zone_of(instance: Instance, config: Config) -> LandingZone:
    """The landing zone of ``instance`` (folders created if missing), its claims signed with a
    key from the instance secret."""
    key = claim_key(config.redsys.pss_secret.reveal())
    return LandingZone(instance.home / "data", key).ensure()


def _sha256(opened: Opened) -> tuple[str, int]:
    with opened.view.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256")
        return digest.hexdigest(), f.tell()


@dataclass
class _Run:
    """The counters and context of one run_load call."""

    instance: Instance
    config: Config
    dictionary: Dictionary
    loader: Loader
    others: list[Loader]
    run_id: int
    zone: LandingZone
    files: int = 0
    rows: int = 0
    duplicates: int = 0
    errors: int = 0

    def __post_init__(self) -> None:
        self.rejected: list[str] = []

    def refuse(self, item: Claim, exc: FileRejected) -> None:
        try:
            reject(
                self.zone, item, exc.reason, loader=self.loader.name, line=exc.line, byte=exc.byte
            )
        except OSError as err:
            # error/ cannot take it (not writable, disk full): back to input/, and the run
            # says why, so the file is neither lost nor stranded in work/
            back = requeue(self.zone, item)
            where = "put back into input/" if back else f"left in work/ as {item.path.name!r}"
            raise LoadError(
                f"loader {self.loader.name}: {item.shown!r} rejected ({exc}) but error/ cannot "
                f"take it: {err.strerror or err}; {where}"
            ) from err
        self.errors += 1
        self.rejected.append(f"{item.shown} ({exc})")
        log.error(
            "landing: loader=%s run=%d file=%r rejected: %s",
            self.loader.name,
            self.run_id,
            item.name,
            exc,
        )
        try:
            self.dictionary.log_message(
                self.loader.schema,
                level="ERROR",
                message=f"file {item.shown!r} rejected: {exc} (moved to data/error)",
                source=f"loader {self.loader.name}",
            )
        except DictionaryError as err:
            log.warning("landing: rejection of %r not logged to the dictionary: %s", item.name, err)

    def check(self, item: Claim) -> None:
        """Refuse what must not be loaded at all: names that more than one loader matches."""
        also = [o.name for o in self.others if o.matches(item.name)]
        if also:
            raise FileRejected(
                f"the name matches more than one loader: {', '.join([self.loader.name, *also])}"
            )

    def one(self, source: Path) -> None:
        item = claim(self.zone, source)
        if item is None:
            return  # another run claimed it first
        try:
            self.check(item)
            try:
                opened = open_regular(item.path)
            except FileNotFoundError:
                raise FileRejected("the file vanished after it was claimed") from None
            with opened:
                outcome = self.load(item, opened)
        except FileRejected as exc:
            self.refuse(item, exc)
            return
        except FileNotFoundError:
            self.refuse(item, FileRejected("the file vanished while it was loaded"))
            return
        except (DictionaryError, OSError) as exc:
            requeue(self.zone, item)  # the file is fine; the database or the disk is not
            raise LoadError(f"loader {self.loader.name}: {item.shown}: {exc}") from exc
        self.finish(item, outcome)

    def load(self, item: Claim, opened: Opened) -> LoadOutcome:
        """Hash and load the opened file (never its name again: it could be swapped)."""
        sha, size = _sha256(opened)
        entry = LedgerEntry(
            claim_id=item.claim_id,
            content_sha256=sha,
            file_name=item.shown,
            file_size=size,
            target=self.loader.target,
            loader=self.loader.name,
            run_id=self.run_id,
        )
        # The readers (and pyarrow behind them) are imported by the loading process only:
        # every other user of the landing package (sched's watchers, redctl) stays light.
        from redpss.landing.readers import ReadAgain, import_positions, read_rows

        if self.loader.method == "IMPORT":  # the database reads the claimed file from cfisrv
            from redpss.dictionary.exasol.cfi import import_source

            return self.dictionary.load_file(
                self.loader,
                file_name=item.path.name,
                positions=import_positions(opened.view, self.loader),
                source=import_source(self.config, self.instance.etc),
                entry=entry,
            )
        max_record = self.config.redsys.landing_max_record
        rows = read_rows(opened.view, self.loader, max_record=max_record)
        try:
            return self.dictionary.load_rows(self.loader, rows, entry=entry)
        except ReadAgain:  # rolled back: the csv module's reader, from the start
            rows = read_rows(opened.view, self.loader, max_record=max_record, fast=False)
            return self.dictionary.load_rows(self.loader, rows, entry=entry)

    def finish(self, item: Claim, outcome: LoadOutcome) -> None:
        """Archive a loaded claim (or refuse a duplicate the loader does not want)."""
        if outcome.status == "DUPLICATE":
            previous = outcome.previous
            if self.loader.duplicates == "ERROR" and previous is not None:
                self.refuse(
                    item,
                    FileRejected(
                        f"same content as {previous.file_name!r}, loaded by run "
                        f"{previous.run_id} (duplicates = error)"
                    ),
                )
                return
            self.duplicates += 1
        else:
            self.files += 1
            self.rows += outcome.rows
        try:
            archive(self.zone, item)
        except FileNotFoundError:  # loaded from the open file; its name was removed meanwhile
            log.warning("landing: %s loaded, but it left work/ before it was archived", item.name)

    def result(self) -> LoadResult:
        parts = [f"{self.files} file(s), {self.rows} row(s) into {self.loader.target}"]
        if self.duplicates:
            parts.append(f"{self.duplicates} duplicate(s) archived")
        if self.errors:
            parts.append(f"{self.errors} rejected to error/: " + "; ".join(self.rejected[:5]))
        return LoadResult(self.files, self.rows, self.duplicates, self.errors, ", ".join(parts))


def run_load(
    *,
    instance: Instance,
    config: Config,
    dictionary: Dictionary,
    loader: str,
    key: str | None,
    run_id: int,
    schema: str,
) -> LoadResult:
    """Run loader ``loader`` for file ``key`` of ``input/`` (None: every complete file).

    ``schema`` is the job's schema; rows go to the loader's own target. Raises LoadError
    only when the run as a whole failed (see the module docstring).
    """
    del schema  # the loader names its target; the job's schema only says who runs it
    try:
        every = dictionary.loaders()  # one read for the loader and the names it must not share
        definition = next((o for o in every if o.name == loader), None)
        others = [o for o in every if o.active and o.name != loader]
    except DictionaryError as exc:
        raise LoadError(f"loader {loader}: dictionary unavailable: {exc}") from exc
    if definition is None:
        raise LoadError(f"no loader called {loader!r} in ADM_LOADER")
    if not definition.active:
        raise LoadError(f"loader {loader} is not active")
    zone = zone_of(instance, config)
    if key is not None:
        if "/" in key or key in (".", "..") or not key:
            raise LoadError(f"loader {loader}: {key!r} is not a file name")
        if not definition.matches(key):
            raise LoadError(f"loader {loader}: {key!r} does not match {definition.pattern!r}")
        names = [key]
    else:
        due = complete_names(
            zone.input,
            definition.regex.search,
            quiet_period=config.redsys.sched_file_quiet_period,
            marker=definition.marker != "NONE",
        )
        names = [d.name for d in due]
    try:
        dictionary.ensure_target_table(definition)
    except DictionaryError as exc:
        raise LoadError(f"loader {loader}: target {definition.target}: {exc}") from exc
    run = _Run(instance, config, dictionary, definition, others, run_id, zone)
    with dictionary.load_session(definition):
        for name in names:
            run.one(zone.input / name)
    result = run.result()
    log.info("landing: loader=%s run=%d %s", loader, run_id, result.message)
    return result


def recover(
    instance: Instance, dictionary: Dictionary, *, config: Config | None = None
) -> list[str]:
    """Finish or requeue what a dead loading process left in ``work/``; say what was done.

    Only claims this instance issued are taken back (:func:`~redpss.landing.lifecycle.issued`:
    their name carries a MAC keyed with the instance secret). A claim the ledger knows under
    the same name was committed and goes to ``archive/``; any other issued claim goes back to
    ``input/`` under its original name (left in ``work/`` if that name is taken again).
    Anything else with a claim-shaped name — planted, renamed, or left by another instance
    secret — goes to ``error/`` with that reason: never loaded, never lost. ``config``: the
    instance's configuration (read from its file when not given).
    """
    zone = zone_of(instance, config or instance.load_config())
    done: list[str] = []
    for item in work_claims(zone):
        if not issued(zone, item):
            done.append(_refuse_foreign(zone, item, "this instance did not issue that claim name"))
            continue
        entry = dictionary.find_claim(item.claim_id)
        if entry is not None and not same_name(entry.file_name, item.name):
            why = f"the ledger holds claim {item.claim_id} for {entry.file_name!r}, not this name"
            done.append(_refuse_foreign(zone, item, why))
        elif entry is not None:
            archive(zone, item)
            done.append(f"archived {item.shown} (claim {item.claim_id} was committed)")
        elif requeue(zone, item) is not None:
            done.append(f"requeued {item.shown} (claim {item.claim_id} was not committed)")
        else:
            done.append(f"left {item.path.name!r} in work/: input/{item.shown} exists")
    for message in done:
        log.info("landing: recover: %s", message)
    return done


def _refuse_foreign(zone: LandingZone, item: Claim, why: str) -> str:
    """Move a file that recovery will not take back to ``error/``; say what was done."""
    reason = (
        f"found in work/ under a claim name, but {why}: someone else put it there "
        "(or the instance secret changed since); not loaded — check where it came from"
    )
    try:
        reject(zone, item, reason, loader=None)
    except OSError as exc:
        return f"left {item.path.name!r} in work/ ({why}); error/ cannot take it: {exc}"
    return f"rejected {display_name(item.path.name)}: {why} (moved to error/)"


PURGE_EVERY = 600.0
"""Seconds between two looks at ``archive/`` and ``error/`` for files past their retention
(retention is counted in days; a look costs an ``lstat`` per file kept there)."""
_last_purge: dict[Path, float] = {}


def sweep(
    instance: Instance,
    config: Config,
    dictionary: Dictionary,
    *,
    keep: Callable[[str], bool] | None = None,
) -> list[str]:
    """Periodic housekeeping: unmatched complete files to ``error/``; expired files deleted.

    A complete file of ``input/`` that no active loader matches — and that json2csv/parq2csv
    will not convert (their suffixes), and that ``keep`` does not claim (sched keeps the files
    of its FILE watchers, whatever their executor) — goes to ``error/`` with "no loader
    matches". The names are judged first, so only an unmatched file costs an ``lstat``: a
    sweep over 100 000 waiting files is a ``scandir`` and a regex per name. Files past their
    retention are looked for every :data:`PURGE_EVERY` seconds.
    """
    cfg = config.redsys
    zone = zone_of(instance, config)
    loaders = dictionary.loaders(active_only=True)
    converted = (cfg.json2csv_json_suffix, cfg.parq2csv_parq_suffix) if cfg.cfi_enabled else ()

    def orphan(name: str) -> bool:
        if any(o.matches(name) for o in loaders) or (keep is not None and keep(name)):
            return False
        return not (converted and name.endswith(converted))

    done: list[str] = []
    quiet = cfg.sched_file_quiet_period
    for due in complete_names(zone.input, orphan, quiet_period=quiet, marker=False):
        name = due.name
        item = claim(zone, zone.input / name)
        if item is None:
            continue
        try:
            reject(zone, item, "no loader matches the file name", loader=None)
        except OSError as exc:
            requeue(zone, item)
            done.append(f"{item.shown}: no loader matches, but error/ cannot take it: {exc}")
            continue
        done.append(f"rejected {item.shown}: no loader matches")
    now = time.monotonic()
    if now - _last_purge.get(zone.data, -PURGE_EVERY) >= PURGE_EVERY:
        _last_purge[zone.data] = now
        # the converters' originals keep their own retention (json2csv_/parq2csv_retention)
        archived = purge_expired(zone.archive, cfg.landing_archive_retention, skip=converted)
        errored = purge_expired(zone.error, cfg.landing_error_retention)
        if archived or errored:
            done.append(
                f"deleted {archived} archived and {errored} rejected file(s) past retention"
            )
    return done
