"""``red_params.conf``: the configuration of one instance, parsed into typed, frozen objects.

The file is INI-shaped, with the sections of the product guide:

``[DEFAULT]``
    values for all other sections: ``log_level`` and the ``exa_*`` connection, plus our
    ``dictionary`` key (``sqlite``, the embedded default, or ``exasol``).
``[redsys]``
    the server processes: ``sched_*``, ``sendmail_*``, ``sendfile_*``, ``dbls_*``, ``jexec_*``,
    ``cfi_*``, ``json2csv_*``, ``parq2csv_*``, ``mail2csv_*``, ``log_retention``, ``log_level``.
``[redinfo]``
    ``log_level`` for redinfo.
``[rest]``
    the REST API: ``rest_enabled``, its own ``exa_username``/``exa_password`` (technical user),
    ``log_level``, ``gu_host``, ``gu_port``, ``gu_workers``.

Everything is checked at once and every problem is reported with file, line, section and key:
an unknown section or key, a value of the wrong type, a required value that is missing. Secret
values (passwords, the instance secret) may be written literally, or as ``env:NAME`` (read from
the environment) or ``file:PATH`` (read from a file; relative paths are relative to the folder of
the configuration file); they are held in :class:`Secret`, whose ``repr`` and ``str`` are masked.

Every default is written once, in the dataclass field below.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from redpss.errors import ConfigError
from redpss.ini import RawFile, read_ini
from redpss.secret import Secret, read_secret

_FINGERPRINT_RE = re.compile(r"[0-9A-Fa-f]{64}")

__all__ = [
    "Config",
    "DefaultSection",
    "KeySpec",
    "LogLevel",
    "RedinfoSection",
    "RestSection",
    "Secret",
    "ServerSection",
    "exposed_secrets",
    "key_specs",
    "load_config",
    "parse_config",
    "require_private_secrets",
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


_SECTIONS: tuple[type[Any], ...] = (DefaultSection, ServerSection, RedinfoSection, RestSection)
# keys of [DEFAULT] that other sections inherit when they know the key
_INHERITED = ("log_level", "exa_username", "exa_password")


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


# --------------------------------------------------------------------------- converting values


def _to_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _to_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None


def _to_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None


def _to_enum(kind: type[enum.Enum], text: str) -> enum.Enum:
    for member in kind:
        if str(member.value).lower() == text.lower():
            return member
    allowed = ", ".join(str(m.value) for m in kind)
    raise ValueError(f"expected one of {allowed}, got {text!r}")


def _convert(kind: Any, text: str, base: Path, env: Mapping[str, str]) -> Any:
    if kind is bool:
        return _to_bool(text)
    if kind is int:
        return _to_int(text)
    if kind is float:
        return _to_float(text)
    if kind is Secret:
        return read_secret(text, base, env)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return _to_enum(kind, text)
    if kind is str:
        return text
    raise TypeError(f"no converter for {kind!r}")  # a programming error, not a user error


def _field_types(cls: type[Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if isinstance(hint, types.UnionType):  # pragma: no cover - no optional fields yet
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        out[f.name] = hint
    return out


# --------------------------------------------------------------------------- building sections


def _build_section(
    cls: type[Any],
    raw: RawFile,
    where: str,
    base: Path,
    env: Mapping[str, str],
    errors: list[str],
) -> Any:
    name: str = cls.SECTION
    entries = dict(raw.sections.get(name, {}))
    if name != "DEFAULT":
        for key in _INHERITED:
            if key not in entries and key in raw.sections["DEFAULT"]:
                entries[key] = raw.sections["DEFAULT"][key]
    kinds = _field_types(cls)
    values: dict[str, Any] = {}
    for key, entry in entries.items():
        if key not in kinds:
            continue  # unknown keys are reported once, by _check_unknown
        try:
            values[key] = _convert(kinds[key], entry.value, base, env)
        except ValueError as exc:
            errors.append(f"{where}, line {entry.line}: [{name}] {key}: {exc}")
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.name not in entries
    ]
    for key in missing:
        line = raw.section_lines.get(name, 0)
        at = f"line {line}" if line else "no such section"
        errors.append(f"{where}, {at}: [{name}] {key} is required but not set")
    if missing or any(k in kinds and k not in values for k in entries):
        return None
    return cls(**values)


def _check_unknown(raw: RawFile, where: str, errors: list[str]) -> None:
    known_sections = {cls.SECTION: set(_field_types(cls)) for cls in _SECTIONS}
    for section, entries in raw.sections.items():
        if section not in known_sections:
            line = raw.section_lines[section]
            allowed = ", ".join(f"[{s}]" for s in known_sections)
            errors.append(f"{where}, line {line}: unknown section [{section}] (known: {allowed})")
            continue
        for key, entry in entries.items():
            if key not in known_sections[section]:
                errors.append(f"{where}, line {entry.line}: [{section}] unknown key {key!r}")


def _check_exasol(
    d: DefaultSection, where: str, line_of: typing.Callable[[str, str], str], errors: list[str]
) -> None:
    cert = d.exa_certificate
    if cert and cert != "nocertcheck" and not _FINGERPRINT_RE.fullmatch(cert):
        if not Path(cert).is_absolute():
            cert = str(Path(where).parent / cert)
        if not Path(cert).is_file():
            errors.append(
                f"{where}, {line_of('DEFAULT', 'exa_certificate')}: [DEFAULT] exa_certificate "
                "must be a certificate fingerprint (64 hex digits), nocertcheck, or a CA "
                f"file; no file {cert}"
            )
    for key in ("exa_connect_timeout", "exa_reconnect_timeout"):
        if getattr(d, key) <= 0:
            errors.append(f"{where}, {line_of('DEFAULT', key)}: [DEFAULT] {key} must be positive")


def _check_consistency(cfg: Config, raw: RawFile, where: str, errors: list[str]) -> None:
    def line_of(section: str, key: str) -> str:
        entry = raw.sections.get(section, {}).get(key)
        return f"line {entry.line}" if entry else f"line {raw.section_lines.get(section, 0)}"

    d, s, r = cfg.default, cfg.redsys, cfg.rest
    if d.dictionary is Dictionary.EXASOL:
        for key in ("exa_connection", "exa_password"):
            if not getattr(d, key):
                errors.append(
                    f"{where}, {line_of('DEFAULT', key)}: [DEFAULT] {key} is required "
                    "when dictionary = exasol"
                )
        _check_exasol(d, where, line_of, errors)
        if r.rest_enabled and not r.exa_password:
            errors.append(
                f"{where}, {line_of('rest', 'exa_password')}: [rest] exa_password is required "
                "when rest_enabled = true"
            )
    if s.sendmail_smtp_user and not s.sendmail_smtp_pass:
        errors.append(
            f"{where}, {line_of('redsys', 'sendmail_smtp_pass')}: [redsys] sendmail_smtp_pass is "
            "required when sendmail_smtp_user is set"
        )
    if not s.pss_secret:
        errors.append(f"{where}, {line_of('redsys', 'pss_secret')}: [redsys] pss_secret is empty")
    if s.cfi_pasv_port_start > s.cfi_pasv_port_end:
        errors.append(
            f"{where}, {line_of('redsys', 'cfi_pasv_port_end')}: [redsys] cfi_pasv_port_end "
            f"({s.cfi_pasv_port_end}) is below cfi_pasv_port_start ({s.cfi_pasv_port_start})"
        )
    if s.log_retention < 1:
        # 0 or less would mean "every log file is old": the purge would empty log/ (#14)
        errors.append(
            f"{where}, {line_of('redsys', 'log_retention')}: [redsys] log_retention must be at "
            f"least 1 (days), not {s.log_retention}"
        )
    if s.heartbeat_interval <= 0:
        errors.append(
            f"{where}, {line_of('redsys', 'heartbeat_interval')}: [redsys] heartbeat_interval "
            "must be above 0"
        )
    for problem in attach_dir_problems(s.sendmail_attach_dirs):
        errors.append(f"{where}, {line_of('redsys', 'sendmail_attach_dirs')}: [redsys] {problem}")
    _check_ports(cfg, raw, where, errors)
    _check_retention(s, where, line_of, errors)


RETENTION_KEYS = (
    "runs_retention",
    "watcher_runs_retention",
    "jmon_stats_retention",
    "log_messages_retention",
    "load_ledger_retention",
)
"""The days each kind of what grows in the dictionary is kept (:mod:`redpss.retention`)."""
_PURGE_TIME_RE = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")


def _check_retention(
    s: ServerSection, where: str, line_of: typing.Callable[[str, str], str], errors: list[str]
) -> None:
    def refuse(key: str, problem: str) -> None:
        errors.append(f"{where}, {line_of('redsys', key)}: [redsys] {key} {problem}")

    for key in RETENTION_KEYS:
        if getattr(s, key) < 1:  # 0 would purge every row at the next purge
            refuse(key, f"must be at least 1 (days), not {getattr(s, key)}")
    # the ledger is what makes a file arriving again a duplicate: it must outlive every copy
    # the landing zone keeps of a loaded file, or one put back from archive/ loads twice
    for key in ("landing_archive_retention", "json2csv_retention", "parq2csv_retention"):
        if s.load_ledger_retention < getattr(s, key):
            refuse(
                "load_ledger_retention",
                f"({s.load_ledger_retention} days) must be at least {key} "
                f"({getattr(s, key):g} days): a file put back from archive/ would load again",
            )
    if not _PURGE_TIME_RE.fullmatch(s.dictionary_purge_time):
        refuse(
            "dictionary_purge_time",
            f"must be a time of day HH:MM (UTC), not {s.dictionary_purge_time!r}",
        )


NEVER_ATTACHED = ("etc", "data/db", "log", "spool")
"""Folders of ``$REDENV_HOME`` no mail may take a file from: secrets, the dictionary, logs,
other mails. ``tmp/`` as a whole is refused too (supervisord's files, the draft of
``redctl config edit``); a folder below it may be named."""


def attach_dirs(text: str) -> tuple[str, ...]:
    """The folders of ``sendmail_attach_dirs``: comma-separated, relative to ``$REDENV_HOME``."""
    return tuple(part.strip().rstrip("/") for part in text.split(",") if part.strip())


_FOLDER_RE = re.compile(r"[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*")


def attach_dir_problems(text: str) -> list[str]:
    """What is wrong with a value of ``sendmail_attach_dirs`` (empty: nothing)."""
    problems = []
    for folder in attach_dirs(text):
        parts = folder.split("/")
        where = f"sendmail_attach_dirs: {folder!r}"
        if not _FOLDER_RE.fullmatch(folder) or {".", ".."} & set(parts):
            problems.append(f"{where} must be a folder below $REDENV_HOME (relative, no '..')")
        elif folder == "tmp" or any(
            folder == never or folder.startswith(never + "/") or never.startswith(folder + "/")
            for never in NEVER_ATTACHED
        ):
            never = ", ".join(f"{n}/" for n in NEVER_ATTACHED)
            problems.append(
                f"{where} would let mails carry files of {never} or tmp/; name a folder of its "
                "own (e.g. data/export)"
            )
    return problems


def _check_ports(cfg: Config, raw: RawFile, where: str, errors: list[str]) -> None:
    seen: dict[int, str] = {}
    for key, port in cfg.ports().items():
        section = "rest" if key == "gu_port" else "redsys"
        entry = raw.sections.get(section, {}).get(key.split(" ")[0])
        line = entry.line if entry else raw.section_lines.get(section, 0)
        if not 1 <= port <= 65535:
            errors.append(f"{where}, line {line}: [{section}] {key}: {port} is not a TCP port")
        elif port in seen:
            errors.append(
                f"{where}, line {line}: [{section}] {key}: port {port} is already used by "
                f"{seen[port]}"
            )
        else:
            seen[port] = key


def parse_config(text: str, *, path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Parse the text of a ``red_params.conf``; raise :class:`ConfigError` listing every problem."""
    where = str(path)
    env = os.environ if env is None else env
    errors: list[str] = []
    raw = read_ini(text, where, errors)
    _check_unknown(raw, where, errors)
    base = path.parent
    built = [_build_section(cls, raw, where, base, env, errors) for cls in _SECTIONS]
    if errors or any(b is None for b in built):
        raise ConfigError("red_params.conf refused:\n  " + "\n  ".join(errors))
    cfg = Config(path, *built)
    _check_consistency(cfg, raw, where, errors)
    if errors:
        raise ConfigError("red_params.conf refused:\n  " + "\n  ".join(errors))
    return cfg


def _readable_by_others(path: Path) -> int | None:
    """The mode of ``path`` when any user (not only owner and group) may read or write it."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return None
    return mode if mode & 0o006 else None


def exposed_secrets(cfg: Config) -> list[str]:
    """Secrets other users of the host can read: each with key, file and the fix.

    A secret file (``file:``) and, when it holds a literal secret, ``red_params.conf`` itself
    must not be readable (or writable) by others: whoever reads ``pss_secret`` may call every op
    of every service (docs/protocol.md). ``redctl start`` and every role refuse to start while
    this list is not empty.
    """
    problems = []
    literal: list[str] = []
    for section in (cfg.default, cfg.redsys, cfg.rest):
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            if not isinstance(value, Secret) or not value:
                continue
            key = f"[{section.SECTION}] {f.name}"
            if value.source.startswith("file:"):
                path = Path(value.source[5:])
                mode = _readable_by_others(path)
                if mode is not None:
                    problems.append(
                        f"{key}: secret file {path} can be read or written by other users "
                        f"(mode {mode:04o}); run: chmod 600 {path}"
                    )
            elif not value.source:
                literal.append(key)
    mode = _readable_by_others(cfg.path)
    if literal and mode is not None:
        problems.append(
            f"{', '.join(literal)}: written in {cfg.path}, which other users can read or write "
            f"(mode {mode:04o}); run: chmod 600 {cfg.path} (or give the secret as file: or env:)"
        )
    return problems


def require_private_secrets(cfg: Config) -> None:
    """Refuse (ConfigError naming key, file and fix) when :func:`exposed_secrets` finds any."""
    if problems := exposed_secrets(cfg):
        raise ConfigError(
            "refusing to start: secrets that other users can read\n  " + "\n  ".join(problems)
        )


def load_config(path: Path, *, env: Mapping[str, str] | None = None) -> Config:
    """Read and parse ``path``; a missing or unreadable file is a :class:`ConfigError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text at byte {exc.start}") from exc
    return parse_config(text, path=path, env=env)


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
    for cls in _SECTIONS:
        kinds = _field_types(cls)
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
                    inherited=cls.SECTION != "DEFAULT" and f.name in _INHERITED,
                )
            )
    return specs
