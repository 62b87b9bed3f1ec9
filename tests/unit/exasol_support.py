"""The Exasol dictionary backend on the emulated database (:mod:`tests.unit.exasol_emulator`).

:func:`emulated_dictionary` is what the ``exa_dic`` fixture and the tests of
``test_exasol_backend`` use: the real backend classes, a real :class:`Session`, only the
connections are emulated.
"""

from __future__ import annotations

from redpss.dictionary.exasol import ExasolDictionary
from redpss.dictionary.exasol.session import ExaSettings, Session
from redpss.dictionary.model import DICTIONARY
from redpss.dictionary.objects import Model
from tests.unit.exasol_emulator import EmulatedDatabase

SETTINGS = ExaSettings(dsn="emulated:8563", user="REDSYS", password="emulated")


class VirtualClock:
    """The session's clock and sleep: backoff delays pass at once, deadlines still hold."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass without waiting."""
        self.now += seconds


def emulated_session(db: EmulatedDatabase) -> Session:
    """A Session whose connections are ``db``'s."""
    clock = VirtualClock()
    return Session(SETTINGS, connect=db.connect, sleep=clock.sleep, clock=clock)


def emulated_dictionary(db: EmulatedDatabase, *, model: Model = DICTIONARY) -> ExasolDictionary:
    """The Exasol dictionary backend talking to ``db`` (not initialised)."""
    return ExasolDictionary(SETTINGS, model=model, session=emulated_session(db))
