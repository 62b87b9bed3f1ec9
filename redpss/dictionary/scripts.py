"""The database-side scripts: the Lua UDFs through which the database calls the stack.

``redctl db scripts`` prints them for a DBA, ``redctl db init --with-scripts`` installs them
through :meth:`Dictionary.install_scripts`. They are SQL text, written here once for every
backend:

1. ``CREATE SCHEMA IF NOT EXISTS REDSYS``;
2. ``CREATE OR REPLACE CONNECTION REDPSS_<INSTANCE>``: its address is a JSON object with the
   host the database reaches the stack at and the ports of dbls, sendmail, jexec and sendfile;
   its password is the instance secret. The secret is in this statement only, never in a
   script's text (which every user with access sees in ``EXA_ALL_SCRIPTS``);
3. one ``CREATE OR REPLACE LUA SCALAR|SET SCRIPT REDSYS.<NAME>`` per entry of :data:`SCRIPTS`.
   Exasol's Lua UDFs cannot ``require`` files, so each script's text is the client module
   (``lua/redpss_client.lua``), the shared helpers (``lua/udf_common.lua``) and its own
   ``run(ctx)`` (``lua/udf/*.lua``) in one piece; it reads host, ports and secret with
   ``exa.get_connection``;
4. ``ACCESS ON CONNECTION … FOR SCRIPT …`` for the dictionary user (``exa_username``), whose
   SQL jobs call the scripts: the creator of a CONNECTION holds it ``WITH ADMIN OPTION`` but
   not ``ACCESS``, and a script that reads a connection without ``ACCESS`` fails with
   "insufficient privileges for using connection" (Exasol's "Hide Access Keys and Passwords");
   without this, only a DBA (``ACCESS ANY CONNECTION``) could run them;
5. for each grantee of ``--grant-to``: ``EXECUTE`` on every script, and the same ``ACCESS``
   (the connection's secret is usable by these scripts only, not readable by the grantee).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from redpss import __version__
from redpss.config import Config
from redpss.errors import ConfigError, RedpssError
from redpss.wire import local_address

__all__ = [
    "MASK",
    "SCHEMA",
    "SCRIPTS",
    "UdfScript",
    "connection_name",
    "db_script_statements",
    "grantee_name",
    "script_file",
    "udf_source",
]

LUA_DIR = Path(__file__).parent / "lua"
SCHEMA = "REDSYS"
MASK = "********"
SERVICES = ("dbls", "sendmail", "jexec", "sendfile")
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,127}$")


@dataclass(frozen=True)
class UdfScript:
    """One script of ``REDSYS``: its SQL signature and the file with its ``run(ctx)``."""

    name: str
    kind: str  # SCALAR (one call per row) or SET (one call per group)
    params: tuple[tuple[str, str], ...]
    returns: str
    source: str  # below lua/udf/

    def signature(self) -> str:
        """``REDSYS.NAME(param TYPE, …)`` as in the CREATE statement."""
        params = ", ".join(f"{name} {kind}" for name, kind in self.params)
        return f"{SCHEMA}.{self.name}({params})"


_LOG_PARAMS = (
    ("log_schema", "VARCHAR(128)"),
    ("log_level", "VARCHAR(10)"),
    ("log_source", "VARCHAR(256)"),
    ("log_text", "VARCHAR(65536)"),
)

# Parameter names are compound so that none is an Exasol keyword; the Lua code reads them
# as ctx.<name>.
SCRIPTS: tuple[UdfScript, ...] = (
    UdfScript(
        "SEND_MAIL",
        "SCALAR",
        (
            ("mail_to", "VARCHAR(20000)"),
            ("mail_subject", "VARCHAR(2000)"),
            ("mail_body", "VARCHAR(2000000)"),
        ),
        "VARCHAR(200)",
        "send_mail.lua",
    ),
    UdfScript("LOG_MESSAGE", "SCALAR", _LOG_PARAMS, "DECIMAL(18,0)", "log_message.lua"),
    UdfScript("LOG_BUFFER", "SET", _LOG_PARAMS, "DECIMAL(18,0)", "log_buffer.lua"),
    UdfScript(
        "RUN_COMMAND",
        "SCALAR",
        (
            ("cmd_name", "VARCHAR(2000)"),
            ("cmd_args", "VARCHAR(2000000)"),
            ("cmd_time_limit", "DECIMAL(9,0)"),
        ),
        "VARCHAR(2000000)",
        "run_command.lua",
    ),
    UdfScript(
        "SEND_FILE",
        "SCALAR",
        (
            ("file_schema", "VARCHAR(128)"),
            ("file_object", "VARCHAR(256)"),
            ("file_options", "VARCHAR(2000000)"),
        ),
        "VARCHAR(2000000)",
        "send_file.lua",
    ),
    UdfScript("REDPSS_PING", "SCALAR", (), "VARCHAR(2000)", "ping.lua"),
)


def connection_name(instance: str) -> str:
    """The CONNECTION object of an instance: ``REDPSS_<INSTANCE>``."""
    return "REDPSS_" + re.sub(r"[^A-Z0-9_]", "_", instance.upper())


def _literal(text: str) -> str:
    """An SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def grantee_name(name: str) -> str:
    """``name`` as a user or role of a GRANT (upper case); ValueError if it is not a plain name."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a user or role name (letters, digits, _)")
    return name.upper()


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string of ASCII characters is a valid Lua string too


def _stack_host(config: Config) -> str:
    """The host the database connects to: ``db_scripts_host``, else where the services listen."""
    s = config.redsys
    if s.db_scripts_host:
        return s.db_scripts_host
    hosts = {local_address(getattr(s, f"{service}_host")) for service in SERVICES}
    if len(hosts) != 1:
        raise ConfigError(
            f"{config.path}: [redsys] db_scripts_host is empty and dbls, sendmail, jexec and "
            f"sendfile listen on different hosts ({', '.join(sorted(hosts))}): set "
            "db_scripts_host to the address the database reaches them at"
        )
    return hosts.pop()


def connection_address(config: Config) -> str:
    """The JSON the CONNECTION holds as its address (no secret in it)."""
    s = config.redsys
    address: dict[str, object] = {"host": _stack_host(config)}
    for service in SERVICES:
        address[f"{service}_port"] = getattr(s, f"{service}_port")
    address["jexec_timeout"] = s.jexec_timeout
    return json.dumps(address, separators=(",", ":"))


def _lua_file(name: str) -> str:
    """A Lua file of ``lua/`` without its leading ``--[[ … --]]`` block (the reader's docs)."""
    path = LUA_DIR / name
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        # the wheel must ship lua/ (package-data); an install without it cannot write scripts
        raise RedpssError(
            f"{path}: {exc.strerror}: this redpss was installed without its Lua files"
        ) from exc
    if text.startswith("--[["):
        text = text[text.index("--]]\n") + 5 :]
    return text.strip()


def udf_source(script: UdfScript, connection: str) -> str:
    """The Lua text of ``script``: client, helpers and ``run(ctx)`` bundled in one piece."""
    client = _lua_file("redpss_client.lua")
    common = _lua_file("udf_common.lua")
    body = (LUA_DIR / "udf" / script.source).read_text(encoding="utf-8").rstrip()
    return "\n".join(
        [
            f"-- {SCHEMA}.{script.name}: written by redpss {__version__} (redctl db scripts);",
            "-- edit redpss/dictionary/lua/ and install again instead of this text.",
            f"local REDPSS_CONNECTION = {_lua_string(connection)}",
            "",
            "-- redpss_client.lua, bundled (a UDF cannot require files)",
            "local redpss = (function()",
            client,
            "end)()",
            "",
            common,
            "",
            body,
            "",
        ]
    )


def db_script_statements(
    config: Config,
    instance: str,
    *,
    grant_to: Sequence[str] = (),
    mask_secret: bool = False,
) -> list[str]:
    """The SQL statements that install the database-side scripts of ``instance``, in order.

    ``grant_to`` names users or roles that may call the scripts; the dictionary user
    (``exa_username``) may always (it gets ``ACCESS`` on the connection; it owns the scripts when
    it created REDSYS, else name it in ``grant_to`` too). With ``mask_secret`` the
    CONNECTION statement shows :data:`MASK` instead of the secret (for showing, not running).
    Raises ConfigError when the host the database should use cannot be told, ValueError for a
    grantee that is not a plain name.
    """
    grantees = list(dict.fromkeys(grantee_name(g) for g in grant_to))
    user = grantee_name(config.default.exa_username)
    conn = connection_name(instance)
    secret = MASK if mask_secret else config.redsys.pss_secret.reveal()
    statements = [
        f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
        f"CREATE OR REPLACE CONNECTION {conn} TO {_literal(connection_address(config))} "
        f"USER 'redpss' IDENTIFIED BY {_literal(secret)}",
    ]
    for script in SCRIPTS:
        statements.append(
            f"CREATE OR REPLACE LUA {script.kind} SCRIPT {script.signature()}\n"
            f"RETURNS {script.returns} AS\n{udf_source(script, conn)}"
        )
    for grantee in [user, *(g for g in grantees if g != user)]:
        for script in SCRIPTS:
            if grantee in grantees:
                statements.append(f"GRANT EXECUTE ON {SCHEMA}.{script.name} TO {grantee}")
            statements.append(
                f"GRANT ACCESS ON CONNECTION {conn} FOR SCRIPT {SCHEMA}.{script.name} TO {grantee}"
            )
    return statements


def script_file(statements: Sequence[str]) -> str:
    """The statements as one file for EXAplus or a DBA's SQL client.

    A CREATE SCRIPT ends with a line holding only ``/`` (its Lua text contains ``;``), every
    other statement with ``;``.
    """
    parts = [
        "-- The database-side scripts of redpss (redctl db scripts); docs/services.md says\n"
        "-- what they do and what to grant.\n"
    ]
    for sql in statements:
        if " SCRIPT " in sql.split("\n", 1)[0] and sql.startswith("CREATE"):
            parts.append(f"{sql}\n/\n")
        else:
            parts.append(f"{sql};\n")
    return "\n".join(parts)
