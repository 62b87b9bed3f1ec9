"""Control of the ``rest`` role of a running instance: the one implementation behind restctl.

The role is a program of the instance's supervisord (process mode); these functions start and
stop just that program and read its row of ``redctl status``.
"""

from __future__ import annotations

from redpss import status
from redpss.config import Config
from redpss.errors import RedpssError, RoleError
from redpss.instance import Instance
from redpss.rest.tls import READY_TIMEOUT, check_tls_files, wait_tls
from redpss.status import EXIT_DEGRADED, EXIT_RUNNING, EXIT_STOPPED, RoleRow
from redpss.supervisor import Supervisor

__all__ = ["ROLE", "rest_status", "start", "stop"]

ROLE = "rest"


def _require_enabled(inst: Instance, config: Config) -> Supervisor:
    if not config.rest.rest_enabled:
        raise RedpssError(
            f"{config.path}: [rest] rest_enabled = false; set it to true and restart the "
            "instance (redctl restart)"
        )
    sup = Supervisor(inst)
    if not sup.is_running():
        raise RedpssError(f"instance {inst.name} is not running (start it with redctl start)")
    if sup.process(ROLE) is None:
        raise RedpssError(
            f"instance {inst.name} was started without the rest role; restart it (redctl restart)"
        )
    return sup


def rest_status(inst: Instance, config: Config) -> tuple[int, RoleRow | None]:
    """Exit code as redctl's (0 running, 1 degraded, 3 stopped) and the role's status row."""
    if not config.rest.rest_enabled:
        return EXIT_STOPPED, None
    st = status.status(inst, config)
    row = next((r for r in st.roles if r.role == ROLE), None)
    if row is None or row.state == "STOPPED" or not st.running:
        return EXIT_STOPPED, row
    if row.healthy:  # the one verdict (redpss.health.is_healthy)
        return EXIT_RUNNING, row
    return EXIT_DEGRADED, row


def start(inst: Instance, config: Config) -> bool:
    """Start the API; return False if it was running already. Waits until it accepts TLS."""
    sup = _require_enabled(inst, config)
    check_tls_files(inst)  # say which file is wrong before supervisord tries
    proc = sup.process(ROLE)
    if proc is not None and proc.state == "RUNNING":
        return False
    if proc is not None and proc.state in ("STARTING", "BACKOFF"):
        # supervisord is trying already (BACKOFF: after a failed start, e.g. before a
        # certificate was made with restctl cert): its next try is what we wait for, unless
        # its tries run out meanwhile (FATAL)
        try:
            wait_tls(config.rest.gu_host, config.rest.gu_port, timeout=READY_TIMEOUT)
            return True
        except RoleError:
            again = sup.process(ROLE)
            if again is None or again.state != "FATAL":
                raise
    sup.start_process(ROLE)
    wait_tls(config.rest.gu_host, config.rest.gu_port, timeout=READY_TIMEOUT)
    return True


def stop(inst: Instance, config: Config) -> bool:
    """Stop the API gracefully; return False if it was not running."""
    return _require_enabled(inst, config).stop_process(ROLE)
