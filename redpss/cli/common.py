"""What the command line tools share: the entry (closed pipes, ``--json`` errors), the instance
option, error printing, logging set-up.

Every tool's ``main(argv=None)`` runs its body through :func:`entry`, which gives each tool the
same three behaviours (docs/operations.md, "Scripting the tools"):

- **A closed pipe ends quietly.** ``redctl status | head -1``: once the reader is gone, what the
  command still prints goes nowhere (no ``BrokenPipeError`` traceback), and the command is not cut
  in half — ``redctl restart | head -1`` still starts what it stopped. The exit code is the
  command's own (0 when it did its work); loops that only print (``watch``, ``log -f``,
  ``start_trace``) end when their reader is gone (:func:`output_closed`).
- **``--json`` answers errors in JSON too**: with ``--json`` anywhere on the command line, an
  error (a redpss error, a usage error of argparse, an unknown name) is one object
  ``{"error": "...", "exit": N}`` on stdout, and the exit code is that ``N``.
- **A user without rights is told whose files these are**: a ``PermissionError`` anywhere
  (the configuration, the dictionary, a log) is one line naming the user, the file and its
  owner, and exit 1 — never a traceback (:func:`permission_denied`).
- **No stray help lines**: tools build their parsers from :class:`ArgumentParser`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import pwd
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, ClassVar, NoReturn

from redpss.config import LogLevel
from redpss.errors import RedpssError
from redpss.instance import Instance
from redpss.logs import configure

__all__ = [
    "ArgumentParser",
    "add_instance_option",
    "emit",
    "entry",
    "fail",
    "guarded",
    "json_mode",
    "output_closed",
    "permission_denied",
    "print_json",
    "setup_cli_logging",
    "warn",
]

EXIT_INTERRUPTED = 130


class _State:
    """The mode of the running tool: set by :func:`entry`, read by :func:`fail` and friends."""

    json = False
    closed: ClassVar[set[int]] = set()  # file descriptors whose reader went away


def json_mode() -> bool:
    """True while a tool runs with ``--json``: errors are printed as JSON on stdout."""
    return _State.json


def output_closed() -> bool:
    """True once stdout's reader has gone (``| head``): a loop that only prints should end."""
    return 1 in _State.closed


class _QuietPipe:
    """A text stream that stops writing, without an error, once its pipe has no reader.

    The first ``BrokenPipeError`` points the file descriptor at ``/dev/null`` (so that the
    interpreter's own flush at exit finds nowhere to fail) and marks it closed.
    """

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def _fd(self) -> int | None:
        try:
            return self._stream.fileno()
        except (OSError, ValueError, AttributeError):
            return None

    def _broken(self) -> None:
        fd = self._fd()
        _State.closed.add(fd if fd is not None else id(self._stream))
        if fd is not None:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, fd)
            os.close(null)

    @property
    def is_closed_pipe(self) -> bool:
        fd = self._fd()
        return (fd if fd is not None else id(self._stream)) in _State.closed

    def write(self, text: str) -> int:
        if self.is_closed_pipe:
            return len(text)
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._broken()
            return len(text)

    def flush(self) -> None:
        if self.is_closed_pipe:
            return
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._broken()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def _quiet_pipes() -> Iterator[None]:
    """stdout and stderr as :class:`_QuietPipe` while the tool runs (restored after: tests)."""
    saved = sys.stdout, sys.stderr
    sys.stdout = _QuietPipe(saved[0])
    sys.stderr = _QuietPipe(saved[1])
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        sys.stdout, sys.stderr = saved


def entry(argv: Sequence[str] | None, body: Callable[[list[str]], int]) -> int:
    """Run a tool's ``body(argv)`` with quiet pipes and, with ``--json``, JSON errors.

    A usage error still raises ``SystemExit(2)`` (argparse's way, which tests rely on); with
    ``--json`` its message is a JSON object on stdout first.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    head = args[: args.index("--")] if "--" in args else args
    was_json, _State.json = _State.json, "--json" in head
    _State.closed = set()
    try:
        with _quiet_pipes():
            try:
                return body(args)
            except (SystemExit, KeyboardInterrupt, RedpssError):
                raise
            except PermissionError as exc:  # a user without the instance's rights
                return fail(permission_denied(exc))
            except Exception as exc:
                if _State.json:  # a bug: the traceback follows on stderr
                    print_json({"error": f"internal error: {type(exc).__name__}: {exc}",
                                "exit": 1})  # fmt: skip
                raise
    finally:
        _State.json = was_json


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser; with ``--json``, a usage error is ``{"error", "exit": 2}`` on stdout."""

    def error(self, message: str) -> NoReturn:
        if _State.json:
            print_json({"error": f"{self.prog}: {message}", "exit": 2})
            raise SystemExit(2)
        super().error(message)


def add_instance_option(parser: argparse.ArgumentParser) -> None:
    """``--instance NAME`` (default: ``$REDENV``)."""
    parser.add_argument(
        "--instance", metavar="NAME", help="the instance to act on (default: $REDENV)"
    )


def _prog() -> str:
    prog = sys.argv[0].rsplit("/", 1)[-1] if sys.argv and sys.argv[0] else "redpss"
    if prog.endswith(".py") or prog in ("-c", "-m", "__main__.py"):
        prog = "redpss"
    return prog


def print_json(doc: Any) -> None:
    """``doc`` as indented JSON on stdout (dates and paths as strings)."""
    print(json.dumps(doc, indent=2, default=str), flush=True)


def emit(as_json: bool, doc: Any, text: str) -> None:
    """Print ``doc`` as JSON with ``--json``, else ``text``."""
    if as_json:
        print_json(doc)
    else:
        print(text)


def fail(message: str, *, code: int = 1) -> int:
    """Say that the command failed; return ``code``.

    Plain: ``<tool>: error: <message>`` on stderr. With ``--json``: ``{"error": message,
    "exit": code}`` on stdout.
    """
    if _State.json:
        print_json({"error": message, "exit": code})
    else:
        print(f"{_prog()}: error: {message}", file=sys.stderr)
    return code


def warn(message: str) -> None:
    """A warning the command goes on after: always on stderr, never in its JSON."""
    print(f"{_prog()}: warning: {message}", file=sys.stderr)


def guarded(action: Callable[[], int]) -> int:
    """Run ``action``; a redpss error becomes a clear message and exit 1 (no traceback).

    An error class may carry another exit code in its ``exit_code`` attribute (usage: 2).
    """
    try:
        return action()
    except RedpssError as exc:
        return fail(str(exc), code=int(getattr(exc, "exit_code", 1)))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def permission_denied(exc: PermissionError) -> str:
    """The message for a ``PermissionError``: who was refused, which file, whose it is.

    The owner is that of the file, or of its nearest folder this user can see (a file below a
    folder closed to the user cannot be looked at itself).
    """
    me = _user(os.geteuid())
    if not exc.filename:
        return f"Permission denied for user {me}: {exc.strerror or exc}"
    path = Path(os.fsdecode(exc.filename)).absolute()
    owner = None
    for candidate in (path, *path.parents):
        try:
            owner = _user(candidate.stat().st_uid)
            break
        except OSError:
            continue
    if owner is None or owner == me:
        return f"Permission denied for user {me} on {path}: {exc.strerror or exc}"
    return (
        f"Permission denied for user {me} on {path} (it belongs to {owner}): "
        f"run this as {owner}, the instance's user"
    )


def setup_cli_logging(inst: Instance, *, debug: bool) -> None:
    """Log to ``log/redctl.log`` of the instance (if it exists) and warnings to stderr.

    A ``redctl.log`` that cannot be opened (another user's instance, a full disk) is a warning:
    the command still runs and says what it can (``status``), without a line in that file.
    """
    log_file = inst.log_dir / "redctl.log" if inst.log_dir.is_dir() else None
    try:
        configure(level=LogLevel.DEBUG if debug else LogLevel.INFO, log_file=log_file)
    except OSError as exc:
        warn(f"{log_file} cannot be written ({exc.strerror or exc}): no line of this command there")
        configure(level=LogLevel.DEBUG if debug else LogLevel.WARN, log_file=None)
        return
    if log_file is not None:
        stream = logging.StreamHandler(sys.stderr)
        stream.setLevel(logging.DEBUG if debug else logging.WARNING)
        stream.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        logging.getLogger().addHandler(stream)
