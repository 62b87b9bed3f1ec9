"""The roles of an instance: which exist, which are enabled, in which order they start.

Roles are listed here in start order; supervisord (process mode) and compose (container mode)
stop them in reverse. A role that a later issue brings is added here and nowhere else.
"""

from __future__ import annotations

from redpss.config import Config
from redpss.errors import RoleError
from redpss.roles.base import Role
from redpss.roles.jmon import Jmon
from redpss.roles.sched import Sched

__all__ = ["ROLES", "enabled_roles", "role_class"]

# start order: the scheduler master must listen before the job monitor hands it work
ROLES: dict[str, type[Role]] = {cls.name: cls for cls in (Sched, Jmon)}


def enabled_roles(config: Config) -> list[str]:
    """Names of the roles this instance runs, in start order (switched-off roles left out)."""
    del config  # every role that exists so far is always on; cfi/rest/mail2csv switch later
    return list(ROLES)


def role_class(name: str) -> type[Role]:
    """The class of role ``name``; an unknown name is a :class:`RoleError` listing the known."""
    try:
        return ROLES[name]
    except KeyError:
        raise RoleError(f"unknown role {name!r} (known: {', '.join(ROLES)})") from None
