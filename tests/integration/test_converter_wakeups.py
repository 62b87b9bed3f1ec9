"""An idle converter sleeps until a file arrives in input/, converts it at once, stops at once."""

from __future__ import annotations

import json
import time

import pytest

from redpss.landing.arrivals import FolderWatch
from redpss.roles.json2csv import RESCAN_EVERY, Json2csv
from tests.conftest import wait_for
from tests.integration.role_support import MakeInstance, role_context, running

DEADLINE = 20.0


def test_an_idle_converter_sleeps_until_a_file_arrives(
    make_instance: MakeInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    # it looked at input/ every landing_poll_interval (1 s) for nothing: a wake-up a second
    waits: list[float | None] = []
    sleep = FolderWatch.wait

    def recording(self: FolderWatch, timeout: float | None) -> bool:
        waits.append(timeout)
        return sleep(self, timeout)

    monkeypatch.setattr(FolderWatch, "wait", recording)
    ctx = role_context(make_instance, sched_file_quiet_period=0.2, landing_poll_interval=0.1)
    data = ctx.instance.home / "data"
    with running(Json2csv, ctx) as role:
        assert isinstance(role, Json2csv) and role._watch is not None
        wait_for(lambda: waits == [RESCAN_EVERY], timeout=DEADLINE, every=0.02)  # asleep
        (data / "input" / "events_1.json").write_text(json.dumps({"ID": 1}) + "\n")
        # woken by the arrival: looks every 0.1 s while the file is too young, converts it,
        # and goes back to sleep (the CSV it wrote into input/ may wake it once more)
        wait_for(lambda: (data / "input" / "events_1.csv").exists(), timeout=DEADLINE)
        wait_for(lambda: len(waits) >= 2, timeout=DEADLINE, every=0.02)
        assert set(waits) == {RESCAN_EVERY}  # never a short sleep on the watch
        assert role.converted == 1
        started = time.monotonic()
    assert time.monotonic() - started < 2.0  # stop() woke the sleep
