"""JSON2CSV: converts arriving JSON files in ``data/input`` to CSV (runs only with cfisrv).

The work is :func:`redpss.landing.convert.convert_pending`; this role runs it in its own thread,
recovers what a dead predecessor left in ``work/`` at start, and deletes archived originals after
``json2csv_retention`` days. :class:`Converter` is shared with parq2csv.

When to look at ``input/``: while a file of its kind is there (not yet complete, or just
refused a claim) or the instance is suspended, every ``landing_poll_interval`` seconds; when
there is none, it sleeps until a name arrives in ``input/`` (inotify,
:mod:`redpss.landing.arrivals`) and looks at once — and at least every ``RESCAN_EVERY`` seconds
as a safety net. Where inotify cannot see arrivals (``input/`` on NFS or SMB, inotify limits
reached) it polls every ``landing_poll_interval`` seconds, as the log says at start. An idle
converter thus does not wake up at all between its heartbeats.
"""

from __future__ import annotations

import logging
import threading
from typing import ClassVar

from redpss.errors import RedpssError
from redpss.landing.arrivals import FolderWatch, open_watch
from redpss.landing.convert import (
    convert_pending,
    purge_originals,
    recover_conversions,
    waiting,
)
from redpss.landing.lifecycle import LandingZone, claim_key
from redpss.roles.base import Role, RoleContext

__all__ = ["Converter", "Json2csv"]

log = logging.getLogger(__name__)

RESCAN_EVERY = 60.0
"""With a watch on ``input/``: the longest sleep without an arrival before looking anyway."""


class Converter(Role):
    """A landing-zone converter: ``kind`` files with ``suffixes()`` to CSV, in a poll thread."""

    kind: ClassVar[str] = ""

    def __init__(self, ctx: RoleContext) -> None:
        super().__init__(ctx)
        secret = ctx.config.redsys.pss_secret.reveal()
        self.zone = LandingZone(ctx.instance.home / "data", claim_key(secret))
        self._thread: threading.Thread | None = None
        self._watch: FolderWatch | None = None
        self._stop = threading.Event()
        self.converted = 0

    def suffixes(self) -> tuple[str, str, float]:
        """``(input suffix, output suffix, retention in days)`` from the configuration."""
        raise NotImplementedError

    def start(self) -> None:
        """Recover ``work/``, then start polling ``input/``."""
        self.zone.ensure()
        for message in recover_conversions(self.zone, self.kind):
            log.info("role=%s recover: %s", self.name, message)
        self._watch, how = open_watch(self.zone.input)
        if self._watch is None:
            interval = self.ctx.config.redsys.landing_poll_interval
            log.info("role=%s polls input/ every %g s: %s", self.name, interval, how)
        else:
            log.info("role=%s waits for arrivals in input/ (%s)", self.name, how)
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()
        self.health.watch("conversion loop", self._thread)

    def poll(self) -> list[str]:
        """Convert what is complete now (one pass)."""
        cfg = self.ctx.config.redsys
        in_suffix, out_suffix, _ = self.suffixes()
        done = convert_pending(
            self.zone,
            self.kind,
            in_suffix=in_suffix,
            out_suffix=out_suffix,
            quiet_period=cfg.sched_file_quiet_period,
            max_record=cfg.landing_max_record,
        )
        self.converted += sum(m.startswith("converted") for m in done)
        return done

    def _loop(self) -> None:
        interval = self.ctx.config.redsys.landing_poll_interval
        in_suffix = self.suffixes()[0]
        while not self._stop.is_set():
            soon = True  # look again after `interval` (suspended, failed, or files waiting)
            if not self.ctx.suspended():
                try:
                    self.poll()
                    soon = waiting(self.zone, in_suffix)
                except (RedpssError, OSError) as exc:  # the role keeps running
                    log.error("role=%s poll failed: %s", self.name, exc)
            if soon or self._watch is None:
                self._stop.wait(interval)
            else:
                self._watch.wait(RESCAN_EVERY)  # an arrival, stop() or the safety net

    def tick(self) -> None:
        """Delete archived originals past their retention."""
        in_suffix, _, retention = self.suffixes()
        purge_originals(self.zone, in_suffix, retention)

    def stop(self) -> None:
        """Finish the file in hand, then stop polling; idempotent."""
        self._stop.set()
        if self._watch is not None:
            self._watch.wake()
        if self._thread is not None:
            self._thread.join(self.ctx.config.redsys.stop_grace)
            if self._thread.is_alive():  # still converting: the watch stays its to use
                return
            self._thread = None
        if self._watch is not None:
            self._watch.close()

    def info(self) -> str:
        """What the heartbeat row shows."""
        return f"{self.converted} file(s) converted"


class Json2csv(Converter):
    """JSON (one object per line, or one array) → CSV."""

    name = "json2csv"
    kind = "JSON"

    def suffixes(self) -> tuple[str, str, float]:
        """``json2csv_json_suffix``, ``json2csv_csv_suffix``, ``json2csv_retention``."""
        cfg = self.ctx.config.redsys
        return cfg.json2csv_json_suffix, cfg.json2csv_csv_suffix, cfg.json2csv_retention
