"""``/metrics``: the instance in Prometheus text format (exposition format 0.0.4).

Computed on every scrape from the same sources as the rest of the API: ``redctl status``
(roles, heartbeats), ``redctl show`` (pools; absent while sched does not answer), the run logs
(the newest :data:`RUN_WINDOW` runs by state), the landing folders and the SENDMAIL spool.
"""

from __future__ import annotations

import logging
from collections import Counter

from redpss import status
from redpss.config import Config
from redpss.dictionary import open_instance_dictionary
from redpss.errors import RedpssError
from redpss.instance import Instance
from redpss.rest import views
from redpss.sched import control as jobs

__all__ = ["RUN_WINDOW", "render"]

log = logging.getLogger(__name__)

RUN_WINDOW = 1000


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Out:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def metric(self, name: str, kind: str, text: str, samples: dict[str, float]) -> None:
        """One metric family; ``samples`` maps a label text (``a="b"`` or "") to its value."""
        self.lines.append(f"# HELP {name} {text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples.items():
            self.lines.append(f"{name}{{{labels}}} {value:g}" if labels else f"{name} {value:g}")


def render(inst: Instance, config: Config) -> str:
    """The metrics text of ``inst``."""
    out = _Out()
    st = status.status(inst, config)
    out.metric("redpss_instance_up", "gauge", "1 while the instance runs",
               {"": 1.0 if st.running else 0.0})  # fmt: skip
    out.metric("redpss_instance_suspended", "gauge", "1 while suspended",
               {"": 1.0 if st.suspended else 0.0})  # fmt: skip
    out.metric("redpss_role_alert", "gauge", "ALERT of each role: 0 ok, 1 warning, 2 error",
               {f'role="{_label(r.role)}"': r.alert for r in st.roles})  # fmt: skip
    out.metric("redpss_role_heartbeat_age_seconds", "gauge", "seconds since the last heartbeat",
               {f'role="{_label(r.role)}"': r.heartbeat_age for r in st.roles
                if r.heartbeat_age is not None})  # fmt: skip
    out.metric("redpss_role_restarts", "gauge", "unclean restarts since the instance started",
               {f'role="{_label(r.role)}"': r.restarts for r in st.roles})  # fmt: skip
    _runs(out, inst, config)
    _pools(out, config)
    out.metric("redpss_landing_files", "gauge", "files per landing folder",
               {f'folder="{k}"': v for k, v in views.landing_counts(inst).items()})  # fmt: skip
    out.metric("redpss_sendmail_spool_mails", "gauge", "mails per SENDMAIL spool folder",
               {f'folder="{k}"': v for k, v in views.sendmail_counts(inst).items()})  # fmt: skip
    return "\n".join(out.lines) + "\n"


def _runs(out: _Out, inst: Instance, config: Config) -> None:
    counts: Counter[tuple[str, str]] = Counter()
    try:
        with open_instance_dictionary(inst, config) as d:
            for kind, watcher in (("job", False), ("watcher", True)):
                for run in d.runs(watcher=watcher, limit=RUN_WINDOW):
                    counts[(kind, run.state)] += 1
    except RedpssError as exc:
        log.warning("metrics: run logs not readable: %s", exc)
    out.metric("redpss_runs", "gauge", f"runs by state among the newest {RUN_WINDOW} per kind",
               {f'kind="{k}",state="{_label(s)}"': n
                for (k, s), n in sorted(counts.items())})  # fmt: skip


def _pools(out: _Out, config: Config) -> None:
    try:
        shown = jobs.show(config)
    except RedpssError:
        out.metric("redpss_sched_up", "gauge", "1 while sched answers", {"": 0.0})
        return
    out.metric("redpss_sched_up", "gauge", "1 while sched answers", {"": 1.0})
    pools = shown.get("pools", {})
    for field, text in (("size", "workers per pool"), ("busy", "busy workers per pool"),
                        ("queued", "runs waiting per pool (queue depth)")):  # fmt: skip
        samples = {f'pool="{_label(p)}"': float(v.get(field, 0)) for p, v in pools.items()}
        out.metric(f"redpss_pool_{field}", "gauge", text, samples)
    out.metric("redpss_running_runs", "gauge", "runs running now",
               {"": float(len(shown.get("running", [])))})  # fmt: skip
