"""sched's worker threads: each has the name its role's heartbeat uses, none dies silently.

sched runs its pools, the release of runs handed over ahead of time, the run log writer and
the watcher checks on threads of its own. If one of them ended, sched would go on answering
on its port while nothing is run, recorded or watched; so the role watches each of them
(``self.health.watch``: a thread that is not alive is a problem of the heartbeat, ALERT 1),
and a thread that ends for an exception logs it with its traceback and hands it to ``died``
(the role names it: ``<thread> died: <exception>``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["Died", "start_thread"]

log = logging.getLogger(__name__)

Died = Callable[[str, BaseException], None]
"""Told the name of a thread and the exception it died of."""


def start_thread(
    name: str, target: Callable[..., object], *args: object, died: Died | None = None
) -> threading.Thread:
    """Start ``target(*args)`` in a daemon thread called ``name``; an exception that ends it
    is logged and given to ``died``."""

    def run() -> None:
        try:
            target(*args)
        except BaseException as exc:
            log.exception("sched thread %r died", name)
            if died is not None:
                died(name, exc)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread
