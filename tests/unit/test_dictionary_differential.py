"""Both backends, the same random sequence of calls: what they return and hold must agree.

SQLite against the Exasol backend on the emulated database (tests/unit/exasol_emulator.py: an
emulation for the backend's logic, not Exasol). Timestamps are left out of the comparison (the
calls take the clock), and so are the texts in which ``''`` and NULL differ on Exasol.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from redpss.dictionary import Dictionary
from redpss.dictionary.jobs import JobDef, RunUpdate, WatcherDef

pytestmark = pytest.mark.unit

T0 = datetime(2030, 1, 1, tzinfo=UTC)
STEPS = 40


def _role(d: Dictionary, rnd: random.Random, step: int) -> object:
    role, pid = rnd.choice(["sched", "dbls"]), rnd.choice([1, 2, 3])
    match rnd.randrange(3):
        case 0:
            return d.register_role(role, pid=pid, host="h", version="v", heartbeat_interval=5)
        case 1:
            state = rnd.choice(["RUNNING", "SUSPENDED"])
            return d.heartbeat(role, pid=pid, state=state, info=rnd.choice([None, "x"]))
        case _:
            return d.role_stopped(role, pid=pid, exit_info=f"exit {step}")


def _run(d: Dictionary, rnd: random.Random, step: int) -> object:
    run_id = rnd.randint(1, 6)
    update = RunUpdate(
        schema=rnd.choice(["DWH", "STAGE"]),
        run_id=run_id,
        name=rnd.choice(["j", "k"]),
        pool="default",
        state=rnd.choice(["QUEUED", "RUNNING", "OK", "FAILED"]),
        queued_at=T0 + timedelta(seconds=run_id),
        rows=rnd.choice([None, 3]),
        message=rnd.choice([None, f"m{step}"]),
    )
    d.record_runs([update])
    return d.abort_unfinished("stopped") if rnd.random() < 0.1 else None


def _error(d: Dictionary, rnd: random.Random, step: int) -> object:
    if rnd.random() < 0.3:
        return d.reset_exec_errors(rnd.choice([None, "w"]), rnd.choice([None, "k1"]))
    return d.record_exec_error("DWH", "w", rnd.choice(["k1", "k2"]), f"boom {step}")


def _log(d: Dictionary, rnd: random.Random, step: int) -> object:
    schema = rnd.choice(["DWH", "STAGE"])
    d.ensure_schema(schema)
    level = rnd.choice(["ERROR", "ALERT"])
    return d.log_message(schema, level=level, message=f"m{step}", ts=T0 + timedelta(step))


def _definition(d: Dictionary, rnd: random.Random, step: int) -> object:
    name = rnd.choice(["j", "k"])
    match rnd.randrange(3):
        case 0:
            job = JobDef(name, "DWH", "SQL", f"SELECT {step}", active=rnd.random() < 0.5)
            watcher = WatcherDef("w", "DWH", "FILE", r"\.csv$", name)
            return d.apply_definitions([job], [watcher] if rnd.random() < 0.5 else [])
        case 1:
            return d.set_active(rnd.choice(["job", "watcher"]), name, rnd.random() < 0.5)
        case _:
            return d.delete_definition("job", name)


OPERATIONS: list[Callable[[Dictionary, random.Random, int], object]] = [
    _role,
    _run,
    _error,
    _log,
    _definition,
]


_BEAT_RE = re.compile(r"last heartbeat [^)]*")


def _without_clock(value: object) -> object:
    """A result with what depends on the clock left out (times, ages, times in texts)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.asdict(value)
        return {
            k: _BEAT_RE.sub("last heartbeat …", v) if isinstance(v, str) else v
            for k, v in fields.items()
            if not isinstance(v, datetime) and k != "heartbeat_age"
        }
    return value


def _play(d: Dictionary, seed: int) -> dict[str, Any]:
    rnd = random.Random(seed)
    answers = [_without_clock(rnd.choice(OPERATIONS)(d, rnd, step)) for step in range(STEPS)]
    return {
        "answers": answers,
        "status": [_without_clock(s) for s in d.pss_status()],
        "runs": [_without_clock(r) for r in d.runs()],
        "last runs": {k: _without_clock(v) for k, v in d.last_runs().items()},
        "errors": sorted((e.schema, e.watcher, e.key, e.count) for e in d.exec_errors()),
        "log": [(m.message_id, m.schema, m.message) for m in d.all_log_messages()],
        "log filtered": [
            (m.message_id, m.schema, m.level, m.message)
            for m in d.all_log_messages(
                5, schema="DWH", levels=("ALERT",), since=T0 + timedelta(STEPS // 2)
            )
        ],
        "jobs": [_without_clock(j) for j in d.jobs()],
        "watchers": [_without_clock(w) for w in d.watchers()],
    }


@pytest.mark.parametrize("seed", range(6))
def test_the_backends_agree(dic: Dictionary, exa_dic: Dictionary, seed: int) -> None:
    sqlite, exasol = _play(dic, seed), _play(exa_dic, seed)
    for part in sqlite:
        assert exasol[part] == sqlite[part], part
