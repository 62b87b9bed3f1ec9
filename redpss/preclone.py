"""Preclone: what an instance keeps across a restore of its database from another one.

The guide: before the database is cloned (restored from another database), ``redctl
preclone`` saves what must survive into ``$REDENV_HOME/tmp/preclone``; after the restore, the
next start puts it back and cleans the logs (in the database and under ``log/DB``).

The start must know that a clone *did* happen: a start after ``preclone`` without a restore in
between must not wipe the instance's own logs. So ``preclone`` writes a random **identity
stamp** twice: into the dictionary (``REDSYS.ADM_PSS_IDENTITY``, the row of this instance) and
into ``preclone.json``. A clone brings the other database's rows, so the stamp in the
dictionary is then another one, or missing. At start (:func:`restore_if_cloned`):

- stamps equal: no clone happened; nothing is touched, the state waits (a warning says so);
- stamps differ: a clone happened; the flags are restored, logs cleaned, the state file kept
  as ``preclone.json.restored-<time>``.

``redctl preclone --cancel`` drops a waiting state (kept as ``preclone.json.cancelled-<time>``);
``--dry-run`` says what would be saved, or what a waiting state would do now; ``--restore``
restores even though the stamps agree (a clone of a backup taken after the preclone).
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redpss.dictionary import Dictionary
from redpss.errors import RedpssError
from redpss.instance import Instance

__all__ = [
    "PRECLONE_FILE",
    "PrecloneError",
    "cancel",
    "clone_seen",
    "pending",
    "plan",
    "restore",
    "restore_if_cloned",
    "save",
    "state_path",
]

log = logging.getLogger(__name__)

PRECLONE_FILE = "preclone.json"


class PrecloneError(RedpssError):
    """A preclone request that cannot be done (nothing waits, the dictionary is too old)."""


def state_path(inst: Instance) -> Path:
    """``$REDENV_HOME/tmp/preclone/preclone.json``."""
    return inst.tmp / "preclone" / PRECLONE_FILE


def pending(inst: Instance) -> dict[str, Any] | None:
    """The waiting preclone state, or None."""
    path = state_path(inst)
    try:
        state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise PrecloneError(f"{path}: unreadable preclone state: {exc}") from exc
    return state


def _state(inst: Instance, dictionary: Dictionary) -> dict[str, Any]:
    from redpss import __version__

    return {
        "instance": inst.name,
        "saved_at": datetime.now(UTC).isoformat(),
        "redpss": __version__,
        "dictionary_version": dictionary.version(),
        "stamp": uuid.uuid4().hex,
        "jobs": {j.name: j.active for j in dictionary.jobs()},
        "watchers": {w.name: w.active for w in dictionary.watchers()},
    }


def _check_version(dictionary: Dictionary) -> None:
    from redpss.dictionary import SCHEMA_VERSION

    have = dictionary.version()
    if have < SCHEMA_VERSION:
        raise PrecloneError(
            f"the dictionary is at version {have}, this redpss needs {SCHEMA_VERSION} for "
            "preclone: run redctl db upgrade first"
        )


def plan(inst: Instance, dictionary: Dictionary) -> dict[str, Any]:
    """What ``preclone`` would save now (``--dry-run``), and what waits already."""
    state = _state(inst, dictionary)
    del state["stamp"]
    waiting = pending(inst)
    doc: dict[str, Any] = {"would_save": state, "pending": None}
    if waiting is not None:
        doc["pending"] = {
            "saved_at": waiting.get("saved_at"),
            "clone_seen": clone_seen(inst, dictionary, waiting),
        }
    return doc


def save(inst: Instance, dictionary: Dictionary) -> dict[str, Any]:
    """Save the state and write the identity stamp (into the dictionary, then the file)."""
    from redpss import __version__

    _check_version(dictionary)
    state = _state(inst, dictionary)
    folder = state_path(inst).parent
    folder.mkdir(parents=True, exist_ok=True)
    # the dictionary first: a state file whose stamp is in no dictionary would look like a clone
    dictionary.write_identity_stamp(
        inst.name, state["stamp"], host=socket.gethostname(), version=__version__
    )
    tmp = folder / (PRECLONE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2), encoding="utf-8")
    tmp.replace(state_path(inst))
    return state


def clone_seen(inst: Instance, dictionary: Dictionary, state: dict[str, Any]) -> bool | None:
    """True when the dictionary no longer carries the stamp of ``state`` (a clone happened),
    False when it does, None when the state has no stamp (written by an older redpss)."""
    stamp = str(state.get("stamp") or "")
    if not stamp:
        return None
    try:
        current = dictionary.identity_stamp(inst.name)
    except RedpssError as exc:
        # a dictionary without ADM_PSS_IDENTITY is an older one: not the one we stamped
        log.info("instance=%s identity stamp not readable (%s): counts as a clone", inst.name, exc)
        return True
    return current != stamp


def _stamped(path: Path, what: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{PRECLONE_FILE}.{what}-{stamp}")
    path.rename(target)
    return target


def cancel(inst: Instance) -> Path:
    """Drop the waiting state (kept as ``preclone.json.cancelled-<time>``); return its path."""
    path = state_path(inst)
    if not path.exists():
        raise PrecloneError(f"no preclone state waits in {path.parent}: nothing to cancel")
    return _stamped(path, "cancelled")


def restore(inst: Instance, dictionary: Dictionary, state: dict[str, Any]) -> dict[str, Any]:
    """Put back the saved flags, clear the cloned logs (database and ``log/DB``)."""
    flags = 0
    for kind, key in (("job", "jobs"), ("watcher", "watchers")):
        for name, active in state.get(key, {}).items():
            flags += bool(dictionary.set_active(kind, name, bool(active)))
    cleared = dictionary.clear_logs()
    files = 0
    db_logs = inst.log_dir / "DB"
    if db_logs.is_dir():
        files = sum(1 for p in db_logs.rglob("*") if p.is_file())
        shutil.rmtree(db_logs)
    kept = _stamped(state_path(inst), "restored")
    done = {"flags_restored": flags, "log_rows_cleared": cleared, "log_files_removed": files,
            "state": str(kept)}  # fmt: skip
    log.warning(
        "instance=%s restored preclone state of %s: %s", inst.name, state.get("saved_at"), done
    )
    return done


def restore_if_cloned(inst: Instance, dictionary: Dictionary) -> dict[str, Any] | None:
    """At start: restore a waiting state when a clone happened; else touch nothing.

    Returns what was restored, or None.
    """
    state = pending(inst)
    if state is None:
        return None
    seen = clone_seen(inst, dictionary, state)
    if seen:
        return restore(inst, dictionary, state)
    why = (
        "the dictionary still carries the identity stamp written at preclone: no clone happened"
        if seen is False
        else "the state has no identity stamp (an older redpss wrote it): a clone cannot be told"
    )
    log.warning(
        "instance=%s preclone state of %s waits: %s; nothing was restored or cleaned (after "
        "the restore of the database the next start does it; redctl preclone --restore does "
        "it now, redctl preclone --cancel drops it)",
        inst.name,
        state.get("saved_at"),
        why,
    )
    return None
