"""What the command line tools share: the instance option, error printing, logging set-up."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from redpss.config import LogLevel
from redpss.errors import RedpssError
from redpss.instance import Instance
from redpss.logs import configure

__all__ = ["add_instance_option", "fail", "guarded", "setup_cli_logging"]


def add_instance_option(parser: argparse.ArgumentParser) -> None:
    """``--instance NAME`` (default: ``$REDENV``)."""
    parser.add_argument(
        "--instance", metavar="NAME", help="the instance to act on (default: $REDENV)"
    )


def fail(message: str, *, code: int = 1) -> int:
    """Print ``message`` to stderr under the tool's name; return ``code``."""
    prog = sys.argv[0].rsplit("/", 1)[-1] if sys.argv and sys.argv[0] else "redpss"
    if prog.endswith(".py") or prog in ("-c", "-m", "__main__.py"):
        prog = "redpss"
    print(f"{prog}: error: {message}", file=sys.stderr)
    return code


def guarded(action: Callable[[], int]) -> int:
    """Run ``action``; a redpss error becomes a clear message and exit 1 (no traceback).

    An error class may carry another exit code in its ``exit_code`` attribute (usage: 2).
    """
    try:
        return action()
    except RedpssError as exc:
        return fail(str(exc), code=int(getattr(exc, "exit_code", 1)))
    except KeyboardInterrupt:
        return 130


def setup_cli_logging(inst: Instance, *, debug: bool) -> None:
    """Log to ``log/redctl.log`` of the instance (if it exists) and warnings to stderr."""
    log_file = inst.log_dir / "redctl.log" if inst.log_dir.is_dir() else None
    configure(level=LogLevel.DEBUG if debug else LogLevel.INFO, log_file=log_file)
    if log_file is not None:
        stream = logging.StreamHandler(sys.stderr)
        stream.setLevel(logging.DEBUG if debug else logging.WARNING)
        stream.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        logging.getLogger().addHandler(stream)
