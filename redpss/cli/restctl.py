"""``restctl``: starts and stops the GUnicorn application server of the REST API.

The REST role comes with its own issue; until then every command says so and exits 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from redpss.cli.common import add_instance_option, fail

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``restctl``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="restctl",
        usage="restctl {start | stop | status | restart}",
        description="Control the REST API server.",
    )
    parser.add_argument("command", choices=("start", "stop", "status", "restart"))
    add_instance_option(parser)
    args = parser.parse_args(argv)
    return fail(
        f"restctl {args.command}: not available yet (comes with the REST API issue)", code=2
    )


if __name__ == "__main__":
    sys.exit(main())
