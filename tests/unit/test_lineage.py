"""The lineage sender without a receiver: events it builds, off by default, never raising."""

from __future__ import annotations

import dataclasses
import json
import queue
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from openlineage.client.serde import Serde

from redpss import lineage
from redpss.dictionary import Dictionary
from redpss.dictionary.jobs import JobDef
from redpss.instance import Instance


@dataclasses.dataclass
class FakeRun:
    run_id: int
    job: JobDef
    queued_at: datetime
    key: str | None = None


@dataclasses.dataclass
class Outcome:
    state: str
    rows: int | None = None
    message: str | None = None


class Keep:
    """A transport that keeps what it is given (or fails, when told)."""

    def __init__(self, fail: bool = False) -> None:
        self.events: list[Any] = []
        self.fail = fail

    def emit(self, event: Any) -> None:
        if self.fail:
            raise ConnectionError("receiver away")
        self.events.append(event)


def sender(inst: Instance, dic: Dictionary, transport: Keep) -> lineage.Lineage:
    return lineage.Lineage(inst, inst.load_config(), dic, transport)


def test_off_by_default(make_instance: Callable[..., Instance], dic: Dictionary) -> None:
    inst = make_instance("ln1")
    assert lineage.Lineage.from_config(inst, inst.load_config(), dic) is None


def test_events_of_a_sql_run(make_instance: Callable[..., Instance], dic: Dictionary) -> None:
    inst = make_instance("ln2")
    keep = Keep()
    s = sender(inst, dic, keep)
    job = JobDef("nightly", "DWH", "SQL", "DELETE FROM T")
    run = FakeRun(42, job, datetime(2026, 1, 1, tzinfo=UTC))
    s.started(run)
    s.ended(run, Outcome("TIMEOUT", message="after 600 s"))
    s.close()
    start, end = (json_of(e) for e in keep.events)
    assert (start["eventType"], end["eventType"]) == ("START", "FAIL")
    assert start["run"]["runId"] == end["run"]["runId"]
    assert start["job"]["namespace"].endswith("/ln2") and start["job"]["name"] == "nightly"
    assert end["job"]["facets"]["sql"]["query"] == "DELETE FROM T"
    assert end["run"]["facets"]["errorMessage"]["message"] == "TIMEOUT: after 600 s"
    assert s.sent == 2 and s.failed == 0


def json_of(event: Any) -> dict[str, Any]:
    return dict(json.loads(Serde.to_json(event)))


def test_a_failing_receiver_and_a_full_queue_never_raise(
    make_instance: Callable[..., Instance], dic: Dictionary
) -> None:
    inst = make_instance("ln3")
    s = sender(inst, dic, Keep(fail=True))
    run = FakeRun(1, JobDef("j", "DWH", "CMD", "x.sh"), datetime.now(UTC))
    s.started(run)
    s.ended(run, Outcome("OK"))
    s.close()
    assert (s.sent, s.failed) == (0, 2)
    # a queue that is full (the receiver slower than the runs): the event is dropped, counted
    blocked = sender(inst, dic, Keep())
    blocked.close()
    blocked._queue = queue.Queue(1)
    blocked._queue.put(object())
    blocked.started(run)
    assert blocked.dropped == 1
