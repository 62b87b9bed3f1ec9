"""JSON2CSV: converts arriving JSON files in ``data/input`` to CSV (runs only with cfisrv).

The work is :func:`redpss.landing.convert.convert_pending`; this role polls ``input/`` every
``landing_poll_interval`` seconds in its own thread, recovers what a dead predecessor left in
``work/`` at start, and deletes archived originals after ``json2csv_retention`` days.
:class:`Converter` is shared with parq2csv.
"""

from __future__ import annotations

import logging
import threading
from typing import ClassVar

from redpss.errors import RedpssError
from redpss.landing.convert import convert_pending, purge_originals, recover_conversions
from redpss.landing.lifecycle import LandingZone, claim_key
from redpss.roles.base import Role, RoleContext

__all__ = ["Converter", "Json2csv"]

log = logging.getLogger(__name__)


class Converter(Role):
    """A landing-zone converter: ``kind`` files with ``suffixes()`` to CSV, in a poll thread."""

    kind: ClassVar[str] = ""

    def __init__(self, ctx: RoleContext) -> None:
        super().__init__(ctx)
        secret = ctx.config.redsys.pss_secret.reveal()
        self.zone = LandingZone(ctx.instance.home / "data", claim_key(secret))
        self._thread: threading.Thread | None = None
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
        while not self._stop.is_set():
            if not self.ctx.suspended():
                try:
                    self.poll()
                except (RedpssError, OSError) as exc:  # the role keeps running
                    log.error("role=%s poll failed: %s", self.name, exc)
            self._stop.wait(interval)

    def tick(self) -> None:
        """Delete archived originals past their retention."""
        in_suffix, _, retention = self.suffixes()
        purge_originals(self.zone, in_suffix, retention)

    def stop(self) -> None:
        """Finish the file in hand, then stop polling; idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.ctx.config.redsys.stop_grace)
            self._thread = None

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
