"""The roles of an instance: which exist, which are enabled, in which order they start.

Roles are listed here in start order; supervisord (process mode) and compose (container mode)
stop them in reverse. A role that a later issue brings is added here and nowhere else.
"""

from __future__ import annotations

import importlib

# Neither typing nor redpss.config is imported at run time: `redpss role X --check` imports this
# module and must stay cheap (bench/health_check.py). mypy reads a TYPE_CHECKING of any origin.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from redpss.config import Config
    from redpss.roles.base import Role

__all__ = ["CFI_ROLES", "PAUSING_ROLES", "ROLES", "enabled_roles", "role_class"]

# start order: the services for the database first (sched's CMD jobs go through jexec), then the
# scheduler master, which must listen before the job monitor hands it work.
# Role name -> "module:class", imported only by role_class: a process runs one role and loads
# only that role's libraries (paramiko for sendfile, pyOpenSSL for cfisrv, …); in container mode,
# one role per container, that is most of an instance's idle memory.
ROLES: dict[str, str] = {
    "dbls": "redpss.roles.dbls:Dbls",
    "jexec": "redpss.roles.jexec:Jexec",
    "sendmail": "redpss.roles.sendmail:Sendmail",
    "sendfile": "redpss.roles.sendfile:Sendfile",
    "mail2cmd": "redpss.roles.mail2cmd:Mail2cmd",
    "sched": "redpss.roles.sched:Sched",
    "jmon": "redpss.roles.jmon:Jmon",
    "cfisrv": "redpss.roles.cfisrv:Cfisrv",
    "json2csv": "redpss.roles.json2csv:Json2csv",
    "parq2csv": "redpss.roles.parq2csv:Parq2csv",
    "rest": "redpss.roles.rest:Rest",
}
# roles that run only when cfisrv is enabled (the guide: the converters serve the CFI loaders)
CFI_ROLES = ("cfisrv", "json2csv", "parq2csv")
# roles that stop working while the instance is suspended: their heartbeat says SUSPENDED (ALERT
# 1); the others keep serving (the database still logs, mails, exports) and stay RUNNING
PAUSING_ROLES = frozenset({"jmon", "sched", "json2csv", "parq2csv"})


def enabled_roles(config: Config) -> list[str]:
    """Names of the roles this instance runs, in start order (switched-off roles left out)."""
    off = () if config.redsys.cfi_enabled else CFI_ROLES
    if not config.redsys.mail2csv_enabled:  # mail2cmd is optional (the guide's mail2csv_*)
        off = (*off, "mail2cmd")
    if not config.rest.rest_enabled:  # the guide's rest_enabled: start REST service on startup
        off = (*off, "rest")
    return [name for name in ROLES if name not in off]


def role_class(name: str) -> type[Role]:
    """The class of role ``name``; an unknown name is a :class:`RoleError` listing the known."""
    from redpss.errors import RoleError

    try:
        module, _, attr = ROLES[name].partition(":")
    except KeyError:
        raise RoleError(f"unknown role {name!r} (known: {', '.join(ROLES)})") from None
    cls: type[Role] = getattr(importlib.import_module(module), attr)
    return cls
