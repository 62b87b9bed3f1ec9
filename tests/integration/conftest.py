"""Fixtures of the integration tier: real roles, real relays, real supervisord.

- ``make_stack(**settings)``: dbls, jexec, sendmail and sendfile running in this process on
  their real ports, sendmail relaying to a ``make_relay()`` relay; ``cmd/hello.sh`` and
  ``EXPORTS.SALES`` (two rows) are there to be called and exported.
- ``make_sched_instance(**settings)`` / ``inst``: an instance under the real supervisord with
  fast scheduling polls and test scripts in ``cmd/`` (the test starts it: ``start(inst)``).

Helpers the tests import by name live in ``role_support.py`` and ``sched_support.py``.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from redpss.instance import Instance
from redpss.roles.dbls import Dbls
from redpss.roles.jexec import Jexec
from redpss.roles.sendfile import Sendfile
from redpss.roles.sendmail import Sendmail
from tests.conftest import MakeRelay, run_cli
from tests.integration.role_support import MakeInstance, Stack, role_context, running
from tests.integration.sched_support import FAST, MakeSchedInstance, script

SALES = [(1, "a"), (2, "b")]


@pytest.fixture
def make_stack(
    make_instance: MakeInstance, make_relay: MakeRelay
) -> Iterator[Callable[..., Stack]]:
    """Factory: start dbls, jexec, sendmail, sendfile of a new instance; stopped at the end."""
    with contextlib.ExitStack() as running_roles:

        def make(**settings: Any) -> Stack:
            relay = make_relay()
            ctx = role_context(
                make_instance,
                sendmail_smtp_host="127.0.0.1",
                sendmail_smtp_port=relay.port,
                sendmail_smtp_encr="PLAIN",
                sendmail_smtp_from="redsys@example.com",
                **settings,
            )
            script(ctx.instance.home / "cmd" / "hello.sh", 'printf "[%s]" "$@"')
            ctx.dictionary.ensure_schema("EXPORTS")
            with sqlite3.connect(ctx.instance.db_dir / "EXPORTS.db") as conn:
                conn.execute("CREATE TABLE SALES (ID INTEGER, NAME TEXT)")
                conn.executemany("INSERT INTO SALES VALUES (?, ?)", SALES)
            conn.close()
            for role in (Dbls, Jexec, Sendmail, Sendfile):
                running_roles.enter_context(running(role, ctx))
            return Stack(ctx, relay)

        yield make


@pytest.fixture
def make_sched_instance(make_instance: MakeInstance) -> Iterator[MakeSchedInstance]:
    """Factory: an instance with fast scheduling polls (and ``settings``), its dictionary
    initialised, the test scripts in cmd/; stopped at the end (the test starts it)."""
    made: list[Instance] = []

    def make(**settings: str) -> Instance:
        inst = make_instance("tst1", **(FAST | settings))
        cmd = inst.home / "cmd"
        script(cmd / "ok.sh", 'echo "ok $RED_JOB $RED_WATCH_KEY"')
        script(cmd / "sleep.sh", 'sleep "$1"')
        script(
            cmd / "fail_on_bad.sh",
            '[ "${RED_WATCH_KEY#bad}" = "$RED_WATCH_KEY" ] || '
            '{ echo "cannot load $RED_WATCH_KEY"; exit 3; }\n'
            'mv "$REDENV_HOME/data/input/$RED_WATCH_KEY" "$REDENV_HOME/data/archive/"',
        )
        init = run_cli("redctl", "db", "init", inst=inst)
        assert init.returncode == 0, init.stdout + init.stderr
        made.append(inst)
        return inst

    yield make
    for inst in made:
        run_cli("redctl", "stop", inst=inst)


@pytest.fixture
def inst(make_sched_instance: MakeSchedInstance) -> Instance:
    """``make_sched_instance()`` with the default fast settings."""
    return make_sched_instance()
