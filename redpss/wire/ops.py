"""The requests of every op of every role: one frozen dataclass per op, the protocol's contract.

What ``docs/protocol.md`` documents for each op's ``args`` is written here once as types and
limits, and checked by :func:`redpss.wire.args.parse` before a role's handler sees it (a
handler is ``op_<name>(self, request: <Op>Request, peer)``). Clients build their requests
from the same classes where that helps (:func:`to_args`). Checks that need a role's state
or its configuration (a command that exists, an attachment folder, a level name's aliases) stay
in the role and raise :class:`~redpss.errors.BadArgs`.

Keep this module and ``docs/protocol.md`` in step: ``tests/unit/test_wire_ops.py`` checks that
every field of every request appears in the op's table there.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from redpss.wire.args import Limits, arg

__all__ = [
    "ADDRESS_RE",
    "FILE_NAME_RE",
    "OPS",
    "Address",
    "ExportMail",
    "ExportSftp",
    "JexecKill",
    "JexecRun",
    "JexecWait",
    "LogObject",
    "LogRequest",
    "MailRequeue",
    "MailSend",
    "MailStatus",
    "NoArgs",
    "SchedKill",
    "SchedStartJob",
    "SchedSubmit",
    "SchedTimetable",
    "Schema",
    "SendFile",
    "SubmitItem",
    "TimetableEntry",
    "to_args",
]

ADDRESS_RE = r"[^@\s<>()\[\],;:\"\\]+@[A-Za-z0-9.\-\[\]:]+"
Schema = Annotated[
    str,
    Limits(
        pattern=r"[A-Za-z_][A-Za-z0-9_]{0,127}",
        what="a schema name (letters, digits, _; at most 128)",
    ),
]
Address = Annotated[
    str, Limits(max_len=320, pattern=ADDRESS_RE, what="a mail address like name@example.com")
]
OneLine = Annotated[str, Limits(max_len=998, pattern=r"[^\r\n]*", what="one line")]
MailId = Annotated[
    str, Limits(pattern=r"[A-Za-z0-9][A-Za-z0-9_\-]{0,99}", what="the id of a spooled mail")
]
RunId = str | int
Digits = Annotated[str, Limits(pattern=r"[1-9][0-9]{0,18}", what="a run id (digits)")]


@dataclass(frozen=True)
class NoArgs:
    """An op without arguments (``show``, ``stats``, ``dead``, ``flush`` …): any is refused."""


def to_args(request: object) -> dict[str, Any]:
    """A request as the ``args`` object of the wire (fields left at None are left out)."""
    assert dataclasses.is_dataclass(request) and not isinstance(request, type)
    return {k: v for k, v in dataclasses.asdict(request).items() if v is not None}


# -- dbls ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogObject:
    """A line of a buffer given as an object: written with time, level and source."""

    message: str
    level: str = "INFO"  # one of dbls.LEVELS or an alias (WARNING, CRITICAL, FATAL), any case


@dataclass(frozen=True)
class LogRequest:
    """dbls ``log``: append a buffer of lines for a schema."""

    schema: Schema
    lines: list[str | LogObject] = arg(min_len=1, max_len=100_000)
    source: str | None = arg(None, max_len=256)


# -- jexec -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class JexecRun:
    """jexec ``run``: run a command of ``cmd/``."""

    command: str = arg(min_len=1, max_len=4096)
    args: list[str] = arg(factory=list, max_len=100_000)
    time_limit: float | None = arg(None, above=0)  # at most jexec_timeout (the role clamps)
    stdin: str | None = None
    job: str | int | None = None
    run_id: RunId | None = None
    env: dict[str, str] = arg(factory=dict, pattern=r"RED_[A-Z0-9_]{1,64}", what="a RED_* name")


@dataclass(frozen=True)
class JexecKill:
    """jexec ``kill``: end the command of a run (SIGTERM, SIGKILL 2 s later)."""

    run_id: RunId
    by: str | None = arg(None, max_len=200)  # who asked, kept in the command's result


@dataclass(frozen=True)
class JexecWait:
    """jexec ``wait``: wait for the command of a run to end."""

    run_id: RunId
    seconds: float = arg(10.0, low=0)  # at most 30 are waited
    forget: bool = False


# -- sendmail --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MailSend:
    """sendmail ``send``: spool a mail."""

    to: Address | list[Address]
    subject: OneLine
    cc: Address | list[Address] = arg(factory=list)
    bcc: Address | list[Address] = arg(factory=list)
    body: str = ""
    html: bool = False
    attachments: list[str] = arg(factory=list, max_len=100)
    reply_to: Address | None = None
    key: str | None = arg(None, min_len=1, max_len=200)


@dataclass(frozen=True)
class MailStatus:
    """sendmail ``status``: the spool, or one mail."""

    id: MailId | None = None


@dataclass(frozen=True)
class MailRequeue:
    """sendmail ``requeue``: send a dead letter again."""

    id: MailId


# -- sendfile --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportMail:
    """sendfile ``send``'s ``mail``: sendmail's ``send`` arguments, the subject optional."""

    to: Address | list[Address]
    subject: OneLine | None = None  # default: Export <schema>.<object>
    cc: Address | list[Address] = arg(factory=list)
    bcc: Address | list[Address] = arg(factory=list)
    body: str = ""
    html: bool = False
    reply_to: Address | None = None
    key: str | None = arg(None, min_len=1, max_len=200)


@dataclass(frozen=True)
class ExportSftp:
    """sendfile ``send``'s ``sftp``: where below the target, and whether to replace."""

    dir: str = arg("", max_len=1000)
    overwrite: bool = False


FILE_NAME_RE = r"[A-Za-z0-9][A-Za-z0-9._\-]{0,199}"
FileName = Annotated[
    str,
    Limits(
        pattern=FILE_NAME_RE,
        what="a file name of letters, digits, '.', '_', '-' (at most 200, not starting with "
        "'.' or '-')",
    ),
]


@dataclass(frozen=True)
class SendFile:
    """sendfile ``send``: export a table or view and deliver it (exactly one target)."""

    schema: Schema
    object: str = arg(min_len=1, max_len=256)
    columns: list[str] | None = arg(None, min_len=1, max_len=10_000)
    where: dict[str, str | int | float | None] | None = None
    format: Literal["csv", "parquet"] = "csv"
    file_name: FileName | None = None
    delimiter: str = arg(
        ",", min_len=1, max_len=1, pattern=r'[^"\r\n]', what="one character, not a quote or a "
        "line break"
    )  # fmt: skip
    header: bool = True
    mail: ExportMail | None = None
    sftp: ExportSftp | None = None


# -- sched -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubmitItem:
    """One run (or watcher check) jmon found due."""

    kind: Literal["job", "watch"]
    name: str = arg(min_len=1, max_len=128)
    due: str | None = arg(None, max_len=64)  # ISO 8601 with offset: the fire time
    note: str | None = arg(None, max_len=2000)
    skip: bool = False


@dataclass(frozen=True)
class SchedSubmit:
    """sched ``submit``: the runs jmon found due."""

    items: list[SubmitItem] = arg(max_len=100_000)


@dataclass(frozen=True)
class SchedStartJob:
    """sched ``start_job``: start a job now."""

    name: str = arg(min_len=1, max_len=128)
    scheduled_only: bool = False
    by: str = arg("redctl", max_len=200)


@dataclass(frozen=True)
class SchedKill:
    """sched ``kill``: end one run (``redctl kill``)."""

    run_id: int | Digits = arg(low=1)
    by: str | None = arg(None, max_len=200)  # who asks; default: an operator at <address>


@dataclass(frozen=True)
class TimetableEntry:
    """One next fire of jmon's timetable."""

    kind: Literal["job", "watch"]
    name: str = arg(max_len=128)
    next: str | None = arg(None, max_len=64)


@dataclass(frozen=True)
class SchedTimetable:
    """sched ``timetable``: jmon's next fires (for ``show``)."""

    entries: list[TimetableEntry] = arg(max_len=10_000)


OPS: dict[str, dict[str, type[Any]]] = {
    "dbls": {"log": LogRequest},
    "jexec": {"run": JexecRun, "kill": JexecKill, "runs": NoArgs, "wait": JexecWait},
    "sendmail": {
        "send": MailSend,
        "status": MailStatus,
        "dead": NoArgs,
        "requeue": MailRequeue,
        "flush": NoArgs,
    },
    "sendfile": {"send": SendFile},
    "sched": {
        "submit": SchedSubmit,
        "start_job": SchedStartJob,
        "kill": SchedKill,
        "show": NoArgs,
        "timetable": SchedTimetable,
        "stats": NoArgs,
        "status": NoArgs,
    },
}
"""Every role's ops and their requests (``ping`` is built in and takes none)."""
