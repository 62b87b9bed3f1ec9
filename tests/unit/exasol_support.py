"""The Exasol dictionary backend on the emulated database (:mod:`tests.unit.exasol_emulator`).

:func:`emulated_dictionary` is what the ``exa_dic`` fixture and the tests of
``test_exasol_backend`` use: the real backend classes, a real :class:`Session`, only the
connections are emulated.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from redpss.dictionary.exasol.core import ExasolCore
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


def dictionary_class() -> type[ExasolCore]:
    """``ExasolDictionary``, or while it is not composed yet, the area mixins that exist with
    the missing methods raising NotImplementedError."""
    package = importlib.import_module("redpss.dictionary.exasol")
    composed = getattr(package, "ExasolDictionary", None)
    if composed is not None:
        return composed  # type: ignore[no-any-return]
    mixins: list[type[ExasolCore]] = []
    for area in ("status", "jobs", "landing", "export"):
        try:
            module = importlib.import_module(f"redpss.dictionary.exasol.{area}")
        except ImportError:
            continue
        mixins += [
            c
            for c in vars(module).values()
            if isinstance(c, type) and issubclass(c, ExasolCore) and c.__module__ == module.__name__
        ]
    stubs: dict[str, Any] = {}
    for name in sorted(type("Probe", tuple(mixins), {}).__abstractmethods__):
        stubs[name] = _missing(name)
    cls = type("EmulatedExasolDictionary", tuple(mixins), stubs)
    return cls


def _missing(name: str) -> Callable[..., Any]:
    def method(self: object, *args: object, **kwargs: object) -> Any:
        raise NotImplementedError(f"the Exasol backend has no {name} yet")

    return method


def emulated_dictionary(db: EmulatedDatabase, *, model: Model = DICTIONARY) -> ExasolCore:
    """The Exasol dictionary backend talking to ``db`` (not initialised)."""
    return dictionary_class()(SETTINGS, model=model, session=emulated_session(db))
