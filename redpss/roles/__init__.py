"""The roles of an instance: which exist, which are enabled, in which order they start.

Roles are listed here in start order; supervisord (process mode) and compose (container mode)
stop them in reverse. A role that a later issue brings is added here and nowhere else.
"""

from __future__ import annotations

from redpss.config import Config
from redpss.errors import RoleError
from redpss.roles.base import Role
from redpss.roles.cfisrv import Cfisrv
from redpss.roles.dbls import Dbls
from redpss.roles.jexec import Jexec
from redpss.roles.jmon import Jmon
from redpss.roles.json2csv import Json2csv
from redpss.roles.mail2cmd import Mail2cmd
from redpss.roles.parq2csv import Parq2csv
from redpss.roles.rest import Rest
from redpss.roles.sched import Sched
from redpss.roles.sendfile import Sendfile
from redpss.roles.sendmail import Sendmail

__all__ = ["ROLES", "enabled_roles", "role_class"]

# start order: the services for the database first (sched's CMD jobs go through jexec), then the
# scheduler master, which must listen before the job monitor hands it work
ROLES: dict[str, type[Role]] = {
    cls.name: cls
    for cls in (
        Dbls,
        Jexec,
        Sendmail,
        Sendfile,
        Mail2cmd,
        Sched,
        Jmon,
        Cfisrv,
        Json2csv,
        Parq2csv,
        Rest,
    )
}
# roles that run only when cfisrv is enabled (the guide: the converters serve the CFI loaders)
CFI_ROLES = ("cfisrv", "json2csv", "parq2csv")


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
    try:
        return ROLES[name]
    except KeyError:
        raise RoleError(f"unknown role {name!r} (known: {', '.join(ROLES)})") from None
