"""The checks of ``red_params.conf`` across keys, once every value has its type: what the
dictionary backend requires, ports that clash, retention that would lose the ledger, attachment
folders that would let a mail carry secrets.

Apart from parsing (:mod:`redpss.config`) because they are the rules that grow with every issue,
while reading a value stays the same; every problem names file, line, section and key.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path

from redpss.config.sections import Config, DefaultSection, Dictionary, ServerSection
from redpss.ini import RawFile

__all__ = [
    "NEVER_ATTACHED",
    "RETENTION_KEYS",
    "attach_dir_problems",
    "attach_dirs",
    "check_consistency",
]

_FINGERPRINT_RE = re.compile(r"[0-9A-Fa-f]{64}")


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


def check_consistency(cfg: Config, raw: RawFile, where: str, errors: list[str]) -> None:
    """Add to ``errors`` what is wrong across the keys of an otherwise well-typed file."""

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
