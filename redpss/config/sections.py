"""The sections of ``red_params.conf`` as typed, frozen dataclasses: every key, its type and its
one default.

A module of its own because everything reads these classes — parsing (:mod:`redpss.config`), the
checks across keys (:mod:`redpss.config.checks`), the secrets' modes
(:mod:`redpss.config.secrets`) and ``redctl config`` (:func:`key_specs`) — and they are the one
place a new key is added.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from redpss.secret import Secret

__all__ = [
    "INHERITED",
    "SECTIONS",
    "Config",
    "DefaultSection",
    "Dictionary",
    "Encryption",
    "KeySpec",
    "LogLevel",
    "RedinfoSection",
    "RestSection",
    "ServerSection",
    "field_types",
    "key_specs",
]


class LogLevel(enum.Enum):
    """Log levels of the guide, plus TRACE (below DEBUG) for ``redctl start_trace``."""

    TRACE = "TRACE"
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"
    ALERT = "ALERT"


class Dictionary(enum.Enum):
    """Where the RED dictionary lives."""

    SQLITE = "sqlite"
    EXASOL = "exasol"


class Encryption(enum.Enum):
    """Transport encryption towards the mail relay."""

    STARTTLS = "STARTTLS"
    PLAIN = "PLAIN"


REQUIRED: Any = dataclasses.MISSING  # a field without a default must be given in the file
NO_SECRET = Secret("")


@dataclass(frozen=True, kw_only=True)
class DefaultSection:
    """``[DEFAULT]``: values shared by all sections."""

    SECTION: ClassVar[str] = "DEFAULT"

    log_level: LogLevel = LogLevel.INFO
    dictionary: Dictionary = Dictionary.SQLITE
    exa_connection: str = ""
    exa_username: str = "REDSYS"
    exa_password: Secret = NO_SECRET
    exa_dbname: str = ""
    exa_certificate: str = ""
    exa_connect_timeout: float = 10.0
    exa_reconnect_timeout: float = 30.0


@dataclass(frozen=True, kw_only=True)
class ServerSection:
    """``[redsys]``: the server processes (roles) of the instance."""

    SECTION: ClassVar[str] = "redsys"

    log_level: LogLevel = LogLevel.INFO
    log_retention: int = 30
    heartbeat_interval: float = 5.0
    stop_grace: int = 30
    pss_secret: Secret = REQUIRED
    sched_host: str = "127.0.0.1"
    sched_service_port: int = REQUIRED
    sched_default_pool_size: int = 4
    sched_loader_pool_size: int = 2
    sched_action_pool_size: int = 2
    sendmail_host: str = "127.0.0.1"
    sendmail_port: int = REQUIRED
    sendmail_smtp_host: str = "localhost"
    sendmail_smtp_port: int = 25
    sendmail_smtp_user: str = ""
    sendmail_smtp_pass: Secret = NO_SECRET
    sendmail_smtp_from: str = ""
    sendmail_smtp_encr: Encryption = Encryption.STARTTLS
    sendfile_host: str = "127.0.0.1"
    sendfile_port: int = REQUIRED
    dbls_host: str = "127.0.0.1"
    dbls_port: int = REQUIRED
    jexec_host: str = "127.0.0.1"
    jexec_port: int = REQUIRED
    cfi_enabled: bool = True
    cfi_host: str = "127.0.0.1"
    cfi_port: int = REQUIRED
    cfi_pasv_port_start: int = REQUIRED
    cfi_pasv_port_end: int = REQUIRED
    json2csv_json_suffix: str = ".json"
    json2csv_csv_suffix: str = ".csv"
    json2csv_retention: int = 7
    parq2csv_parq_suffix: str = ".parquet"
    parq2csv_csv_suffix: str = ".csv"
    parq2csv_retention: int = 7
    mail2csv_enabled: bool = False
    mail2csv_host: str = "127.0.0.1"
    mail2csv_port: int = REQUIRED
    # scheduling (issue 4): see docs/scheduling.md
    sched_definitions_poll: float = 2.0
    sched_misfire_grace: float = 5.0
    sched_file_quiet_period: float = 2.0
    sched_stats_interval: float = 60.0
    # services for the database (issue 6): see docs/services.md
    dbls_fsync: bool = True
    dbls_max_line: int = 65536
    dbls_queue_size: int = 10000
    jexec_timeout: int = 3600
    jexec_output_limit: int = 65536
    jexec_max_parallel: int = 4
    sendmail_smtp_timeout: float = 30.0
    sendmail_smtp_cafile: str = ""
    sendmail_retry_base: float = 5.0
    sendmail_retry_max: float = 600.0
    sendmail_give_up: int = 259200
    sendmail_max_size: int = 26214400
    sendmail_attach_dirs: str = "data/export, tmp/sendfile"
    # landing zone (issue 5): see docs/landing.md
    landing_archive_retention: float = 7.0
    landing_error_retention: float = 30.0
    landing_max_record: int = 16777216
    landing_poll_interval: float = 1.0
    cfi_user: str = "redcfi"
    cfi_password: Secret = NO_SECRET
    # sendfile and mail2cmd (issue 6): see docs/services.md
    sendfile_batch_size: int = 10000
    sendfile_sftp_host: str = ""
    sendfile_sftp_port: int = 22
    sendfile_sftp_user: str = ""
    sendfile_sftp_key_file: str = ""
    sendfile_sftp_key_pass: Secret = NO_SECRET
    sendfile_sftp_known_hosts: str = ""
    sendfile_sftp_dir: str = ""
    sendfile_sftp_timeout: float = 30.0
    mail2cmd_allowed_senders: str = ""
    mail2cmd_commands: str = ""
    mail2cmd_max_size: int = 10485760
    mail2cmd_time_limit: int = 600
    # database-side scripts (issue 8): see docs/services.md
    db_scripts_host: str = ""
    # OpenLineage run events of jobs and loads (issue 16, off while lineage_url is empty):
    # see docs/operations.md
    lineage_url: str = ""
    lineage_endpoint: str = "api/v1/lineage"
    lineage_namespace: str = ""
    lineage_api_key: Secret = NO_SECRET
    lineage_timeout: float = 5.0
    # retention in the dictionary (issue 20): days each kind is kept; see docs/operations.md
    runs_retention: int = 90
    watcher_runs_retention: int = 90
    jmon_stats_retention: int = 30
    log_messages_retention: int = 90
    load_ledger_retention: int = 90
    dictionary_purge_time: str = "02:30"


@dataclass(frozen=True, kw_only=True)
class RedinfoSection:
    """``[redinfo]``."""

    SECTION: ClassVar[str] = "redinfo"

    log_level: LogLevel = LogLevel.INFO


@dataclass(frozen=True, kw_only=True)
class RestSection:
    """``[rest]``: the REST API and its technical user."""

    SECTION: ClassVar[str] = "rest"

    rest_enabled: bool = False
    exa_username: str = "REDSYS"
    exa_password: Secret = NO_SECRET
    log_level: LogLevel = LogLevel.INFO
    gu_host: str = "127.0.0.1"
    gu_port: int = REQUIRED
    gu_workers: int = 2


SECTIONS: tuple[type[Any], ...] = (DefaultSection, ServerSection, RedinfoSection, RestSection)
# keys of [DEFAULT] that other sections inherit when they know the key
INHERITED = ("log_level", "exa_username", "exa_password")


@dataclass(frozen=True)
class Config:
    """The whole ``red_params.conf`` of one instance."""

    path: Path
    default: DefaultSection
    redsys: ServerSection
    redinfo: RedinfoSection
    rest: RestSection

    def ports(self) -> dict[str, int]:
        """Every port the instance listens on (enabled services only), by key name."""
        s = self.redsys
        ports = {
            "sched_service_port": s.sched_service_port,
            "sendmail_port": s.sendmail_port,
            "sendfile_port": s.sendfile_port,
            "dbls_port": s.dbls_port,
            "jexec_port": s.jexec_port,
        }
        if s.cfi_enabled:
            ports["cfi_port"] = s.cfi_port
            for p in range(s.cfi_pasv_port_start, s.cfi_pasv_port_end + 1):
                ports[f"cfi_pasv_port {p}"] = p
        if s.mail2csv_enabled:
            ports["mail2csv_port"] = s.mail2csv_port
        if self.rest.rest_enabled:
            ports["gu_port"] = self.rest.gu_port
        return ports


def field_types(cls: type[Any]) -> dict[str, Any]:
    """The type of every field of a section class, by key."""
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if isinstance(hint, types.UnionType):  # pragma: no cover - no optional fields yet
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        out[f.name] = hint
    return out


# --------------------------------------------------------------------------- keys, for tools


@dataclass(frozen=True)
class KeySpec:
    """One key of ``red_params.conf`` as tools see it (``redctl config``)."""

    section: str
    key: str
    kind: Any
    default: Any
    required: bool
    secret: bool
    inherited: bool
    """True when a missing value is taken from ``[DEFAULT]``."""


def key_specs() -> list[KeySpec]:
    """Every known key of every section, in the order of the dataclasses above."""
    specs = []
    for cls in SECTIONS:
        kinds = field_types(cls)
        for f in dataclasses.fields(cls):
            required = f.default is dataclasses.MISSING
            specs.append(
                KeySpec(
                    section=cls.SECTION,
                    key=f.name,
                    kind=kinds[f.name],
                    default=None if required else f.default,
                    required=required,
                    secret=kinds[f.name] is Secret,
                    inherited=cls.SECTION != "DEFAULT" and f.name in INHERITED,
                )
            )
    return specs
