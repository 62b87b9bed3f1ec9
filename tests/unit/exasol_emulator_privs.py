"""Users and privileges of the emulated Exasol (:mod:`tests.unit.exasol_emulator`).

**Not Exasol's whole model**: what the backend's statements meet, with the rules of Exasol's
"Details on rights management", GRANT and CREATE CONNECTION pages:

- Users: ``SYS`` (the DBA: every privilege) and ``REDSYS``, the dictionary user, who has
  exactly the system privileges :data:`~redpss.dictionary.exasol.ddl.DICTIONARY_USER_PRIVILEGES`
  the documentation tells the DBA to grant; :meth:`Privileges.add_user` adds more (a reader).
  A connection logs in as ``settings.user`` (a user without ``CREATE SESSION`` cannot).
- Whoever creates a schema owns it and every object in it: the owner may do anything with them;
  others need an object privilege (granted to them or to ``PUBLIC``) or an ``… ANY …`` system
  privilege. ``CREATE SCHEMA|TABLE|VIEW|SCRIPT|CONNECTION`` and ``IMPORT`` need their system
  privilege (in another's schema ``CREATE ANY …``); ``SYS.*`` tables and ``DUAL`` are free.
- ``CREATE CONNECTION`` grants the connection to its creator ``WITH ADMIN OPTION``; ``GRANT
  ACCESS ON CONNECTION c [FOR SCRIPT s | FOR SCHEMA s] TO u`` needs that admin option (or
  ``GRANT ANY CONNECTION``). A call of a stored script checks ``EXECUTE`` on it and, when its
  text names a connection (``exa.get_connection('C')`` or redpss's ``REDPSS_CONNECTION = "C"``),
  ``ACCESS`` on that connection for that script: the creator of a connection has no ACCESS by
  itself ("insufficient privileges for using connection … in script …", Exasol's text). The
  call then returns NULL: the script's body is not run.
- ``GRANT SELECT|INSERT|UPDATE|DELETE|EXECUTE ON o TO u`` needs ownership of ``o`` (or ``GRANT
  ANY OBJECT PRIVILEGE``); system privileges are granted by the DBA only.

Not emulated: roles other than PUBLIC, REVOKE, ``WITH ADMIN OPTION`` on grants, privileges of
views over others' tables, filtering of ``EXA_ALL_*`` by what a user may see; privileges are not
transactional here (a rolled-back GRANT stays).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from sqlglot import exp

from redpss.dictionary.exasol.ddl import DICTIONARY_USER_PRIVILEGES

__all__ = ["DBA", "DICTIONARY_USER", "Access", "Denied", "Privileges", "access_of"]

DBA = "SYS"
DICTIONARY_USER = "REDSYS"
PUBLIC = "PUBLIC"
_FREE_SCHEMAS = frozenset({"SYS", "", "MAIN"})

_NAME = r'"?(\w+)"?'
GRANT_OBJECT_RE = re.compile(
    rf"\s*GRANT\s+(SELECT|INSERT|UPDATE|DELETE|EXECUTE)\s+ON\s+{_NAME}\.{_NAME}\s+TO\s+{_NAME}"
    r"\s*;?\s*$",
    re.I,
)
GRANT_ACCESS_RE = re.compile(
    rf"\s*GRANT\s+ACCESS\s+ON\s+(?:CONNECTION\s+)?{_NAME}"
    rf"(?:\s+FOR\s+(SCRIPT|SCHEMA)\s+{_NAME}(?:\.{_NAME})?)?\s+TO\s+{_NAME}\s*;?\s*$",
    re.I,
)
GRANT_SYSTEM_RE = re.compile(r"\s*GRANT\s+([A-Z ,]+?)\s+TO\s+" + _NAME + r"\s*;?\s*$", re.I)
CONNECTION_IN_SCRIPT_RE = re.compile(
    r"""get_connection\(\s*['"](\w+)['"]|REDPSS_CONNECTION\s*=\s*"(\w+)\"""", re.I
)


class Denied(Exception):
    """Insufficient privileges (Exasol's SQLSTATE 42500)."""


@dataclass(frozen=True)
class Access:
    """What one statement needs: what it creates, reads, writes and which scripts it calls
    (names upper case; an empty schema: the session's current one)."""

    create: tuple[str, str] | None = None  # (SCHEMA|TABLE|VIEW, schema)
    reads: tuple[tuple[str, str], ...] = ()
    writes: tuple[tuple[str, str, str], ...] = ()  # (privilege, schema, name)
    calls: tuple[tuple[str, str], ...] = ()


def _name(table: exp.Table) -> tuple[str, str]:
    return table.db.upper(), table.name.upper()


def access_of(tree: exp.Expr) -> Access:
    """What ``tree`` needs; a script call ``S.F(…)`` in it is replaced by NULL (the emulator
    checks the call, it does not run the script)."""
    calls = []
    for dot in list(tree.find_all(exp.Dot)):
        if isinstance(dot.this, exp.Identifier) and isinstance(dot.expression, exp.Anonymous):
            calls.append((dot.this.name.upper(), dot.expression.name.upper()))
            dot.replace(exp.Null())
    ctes = {c.alias_or_name.upper() for c in tree.find_all(exp.CTE)}
    tables = [t for t in tree.find_all(exp.Table) if t.name and t.name.upper() not in ctes]
    create = None
    writes: list[tuple[str, str, str]] = []
    target: exp.Expression | None = None
    if isinstance(tree, exp.Create):
        kind = str(tree.args.get("kind")).upper()
        made = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
        if kind == "SCHEMA":
            create = ("SCHEMA", (made.name or made.db).upper())
            tables = []
        elif kind in ("TABLE", "VIEW") and isinstance(made, exp.Table):
            create, target = (kind, made.db.upper()), made
    elif isinstance(tree, exp.Insert | exp.Update | exp.Delete | exp.Merge):
        target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
        if isinstance(target, exp.Table):
            privileges = {
                exp.Insert: ("INSERT",), exp.Update: ("UPDATE",), exp.Delete: ("DELETE",),
                exp.Merge: ("INSERT", "UPDATE"),
            }[type(tree)]  # fmt: skip
            writes = [(p, *_name(target)) for p in privileges]
    elif isinstance(tree, exp.Alter) and isinstance(tree.this, exp.Table):
        target = tree.this
        writes = [("ALTER", *_name(tree.this))]
    reads = tuple(_name(t) for t in tables if t is not target)
    return Access(create, reads, tuple(writes), tuple(calls))


@dataclass
class User:
    """A user and its system privileges."""

    name: str
    dba: bool = False
    system: set[str] = field(default_factory=set)


class Privileges:
    """Who owns which schema, and who was granted what (module doc)."""

    def __getstate__(self) -> dict[str, object]:
        return {k: v for k, v in vars(self).items() if k != "_lock"}

    def __setstate__(self, state: dict[str, object]) -> None:
        vars(self).update(state)
        self._lock = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.users: dict[str, User] = {
            DBA: User(DBA, dba=True),
            DICTIONARY_USER: User(DICTIONARY_USER, system=set(DICTIONARY_USER_PRIVILEGES)),
        }
        self.owners: dict[str, str] = {}
        self.objects: set[tuple[str, str, str, str]] = set()  # grantee, privilege, schema, name
        self.connection_admins: set[tuple[str, str]] = set()  # grantee, connection
        self.access: set[tuple[str, str, str]] = set()  # grantee, connection, scope ("": any)
        self.script_connections: dict[tuple[str, str], str | None] = {}

    def add_user(self, name: str, *system: str, dba: bool = False) -> None:
        """Create user ``name`` with the system privileges ``system``."""
        with self._lock:
            self.users[name.upper()] = User(name.upper(), dba=dba, system={*system})

    # -- checks -------------------------------------------------------------------------------

    def login(self, user: str) -> str:
        """The user a connection logs in as; Denied when it may not."""
        found = self.users.get(user.upper())
        if found is None or not (found.dba or "CREATE SESSION" in found.system):
            raise Denied(f"user {user.upper()} may not log in (no such user or no CREATE SESSION)")
        return found.name

    def has_system(self, user: str, privilege: str) -> bool:
        """Whether ``user`` holds system privilege ``privilege``."""
        found = self.users[user]
        return found.dba or privilege in found.system

    def require_system(self, user: str, privilege: str) -> None:
        """Denied unless ``user`` holds ``privilege``."""
        if not self.has_system(user, privilege):
            raise Denied(f"insufficient privileges: {privilege} (user {user})")

    def owns(self, user: str, schema: str) -> bool:
        """Whether ``user`` owns ``schema`` (or is the DBA)."""
        return self.users[user].dba or self.owners.get(schema.upper()) == user

    def require_object(self, user: str, privilege: str, schema: str, name: str) -> None:
        """Denied unless ``user`` may ``privilege`` object ``schema.name``."""
        schema, name = schema.upper(), name.upper()
        if schema in _FREE_SCHEMAS or self.owns(user, schema):
            return
        if any((g, privilege, schema, name) in self.objects for g in (user, PUBLIC)):
            return
        kind = "SCRIPT" if privilege == "EXECUTE" else "TABLE"
        if self.has_system(user, f"{privilege} ANY {kind}"):
            return
        raise Denied(f"insufficient privileges: {privilege} on {schema}.{name} (user {user})")

    def require_create(self, user: str, kind: str, schema: str) -> None:
        """Denied unless ``user`` may create a ``kind`` (TABLE, VIEW, SCRIPT) in ``schema``."""
        if schema.upper() in self.owners and not self.owns(user, schema):
            self.require_system(user, f"CREATE ANY {kind}")
        else:
            self.require_system(user, f"CREATE {kind}")

    def check(self, user: str, access: Access, current_schema: str) -> None:
        """Denied unless ``user`` may do what ``access`` says."""
        if access.create is not None:
            kind, schema = access.create
            if kind == "SCHEMA":
                self.require_system(user, "CREATE SCHEMA")
            else:
                self.require_create(user, kind, schema or current_schema)
        for privilege, schema, name in access.writes:
            if privilege == "ALTER":
                if not self.owns(user, schema or current_schema):
                    self.require_system(user, "ALTER ANY TABLE")
            else:
                self.require_object(user, privilege, schema or current_schema, name)
        for schema, name in access.reads:
            if schema or (current_schema and name != "DUAL"):
                self.require_object(user, "SELECT", schema or current_schema, name)
        for schema, name in access.calls:
            self.require_call(user, schema, name)

    def require_call(self, user: str, schema: str, script: str) -> None:
        """A script call: EXECUTE on it, and ACCESS on the connection its text names."""
        self.require_object(user, "EXECUTE", schema, script)
        connection = self.script_connections.get((schema.upper(), script.upper()))
        if connection is None or self.has_system(user, "ACCESS ANY CONNECTION"):
            return
        scopes = ("", f"SCRIPT {schema}.{script}".upper(), f"SCHEMA {schema}".upper())
        if not any((g, connection, s) in self.access for g in (user, PUBLIC) for s in scopes):
            raise Denied(
                f"insufficient privileges for using connection {connection} in script "
                f"{script.upper()} (user {user})"
            )

    # -- what statements leave behind ---------------------------------------------------------

    def created_schema(self, user: str, schema: str) -> None:
        """``user`` created ``schema`` (an existing schema keeps its owner)."""
        with self._lock:
            self.owners.setdefault(schema.upper(), user)

    def created_connection(self, user: str, connection: str) -> None:
        """CREATE CONNECTION grants the connection to its creator with the admin option."""
        self.require_system(user, "CREATE CONNECTION")
        with self._lock:
            self.connection_admins.add((user, connection.upper()))

    def created_script(self, user: str, schema: str, name: str, text: str) -> None:
        """A script was stored; remember the connection its text uses."""
        m = CONNECTION_IN_SCRIPT_RE.search(text)
        with self._lock:
            key = (schema.upper(), name.upper())
            self.script_connections[key] = (m.group(1) or m.group(2)).upper() if m else None

    def grant(self, user: str, statement: str) -> bool:
        """Apply a GRANT ``user`` sends; False when it is none this module knows."""
        if m := GRANT_ACCESS_RE.match(statement):
            connection, kind, first, second, grantee = m.groups()
            admin = (user, connection.upper()) in self.connection_admins
            if not (admin or self.has_system(user, "GRANT ANY CONNECTION")):
                raise Denied(f"insufficient privileges: GRANT ACCESS ON {connection} (user {user})")
            scope = ""
            if kind:
                scope = f"{kind} {first}.{second}" if second else f"{kind} {first}"
            with self._lock:
                self.access.add((grantee.upper(), connection.upper(), scope.upper()))
            return True
        if m := GRANT_OBJECT_RE.match(statement):
            privilege, schema, name, grantee = m.groups()
            if not (self.owns(user, schema) or self.has_system(user, "GRANT ANY OBJECT PRIVILEGE")):
                raise Denied(f"insufficient privileges: GRANT on {schema}.{name} (user {user})")
            with self._lock:
                self.objects.add((grantee.upper(), privilege.upper(), schema.upper(), name.upper()))
            return True
        if m := GRANT_SYSTEM_RE.match(statement):
            self.require_system(user, "GRANT ANY PRIVILEGE")
            found = self.users.setdefault(m.group(2).upper(), User(m.group(2).upper()))
            found.system.update(p.strip().upper() for p in m.group(1).split(","))
            return True
        return False
