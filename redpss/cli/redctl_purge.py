"""``redctl db purge [--dry-run] [--vacuum]``: the dictionary purged to its retention, now.

Exit codes: 0 the purge ran (or, with ``--dry-run``, was planned), whatever it found; 1 the
dictionary failed (nothing half-done stays: each batch is its own transaction); 2 a usage
error. The audit line is written by redctl (``db purge``; none for ``--dry-run``).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from redpss.dictionary import open_instance_dictionary
from redpss.instance import Instance

if TYPE_CHECKING:
    from redpss.retention import PurgeReport

__all__ = ["add_options", "check_usage", "db_purge"]


def add_options(db: argparse.ArgumentParser) -> None:
    """The options of ``db purge`` on the ``db`` parser."""
    db.add_argument(
        "--dry-run", action="store_true", help="purge: show what would be deleted; change nothing"
    )
    db.add_argument(
        "--vacuum",
        action="store_true",
        help="purge: then rewrite each SQLite file whole (needed once for files made before "
        "dictionary version 7; holds each file while it runs)",
    )


def check_usage(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``--dry-run`` and ``--vacuum`` go with ``db purge``, not together (exit 2)."""
    if (args.dry_run or args.vacuum) and args.action != "purge":
        parser.error("--dry-run and --vacuum go with db purge")
    if args.dry_run and args.vacuum:
        parser.error("--vacuum changes the files: it cannot go with --dry-run")


def _size(value: int | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024  # type: ignore[assignment]
    return str(value)


def _as_json(report: PurgeReport, vacuumed: int | None) -> dict[str, Any]:
    return {
        "dry_run": report.dry_run,
        "rows": report.rows,
        "tables": [
            {
                "kind": t.kind,
                "table": t.table,
                "older_than": t.before.isoformat(),
                "rows": t.rows,
                "batches": t.batches,
                "longest_ms": round(t.longest * 1000, 1),
            }
            for t in report.tables
        ],
        "seconds": round(report.seconds, 2),
        "longest_ms": round(report.longest * 1000, 1),
        "bytes_before": report.bytes_before,
        "bytes_after": report.bytes_after,
        "bytes_compacted": report.compacted,
        "bytes_vacuumed": vacuumed,
        "needs_vacuum": report.blocked,
    }


def _print(inst: Instance, report: PurgeReport, vacuumed: int | None) -> None:
    verb = "would delete" if report.dry_run else "deleted"
    print(f"{'KIND':<14} {'TABLE':<34} {'OLDER THAN':<20} {'ROWS':>10}")
    for t in report.tables:
        print(
            f"{t.kind:<14} {t.table:<34} {t.before.isoformat(timespec='seconds')[:19]:<20} "
            f"{t.rows:>10}"
        )
    if report.dry_run:
        print(f"dictionary of {inst.name}: {verb} {report.rows} rows (dry run: nothing changed)")
    else:
        print(
            f"dictionary of {inst.name}: {verb} {report.rows} rows in "
            f"{sum(t.batches for t in report.tables)} batches, {report.seconds:.1f} s, longest "
            f"transaction {report.longest * 1000:.0f} ms; on disk {_size(report.bytes_before)} "
            f"-> {_size(report.bytes_after)}"
        )
    if vacuumed is not None:
        print(f"vacuum: {_size(vacuumed)} given back")
    elif report.blocked:
        print(
            f"{', '.join(report.blocked)}: made before dictionary version 7, their free pages go "
            "back only with redctl db purge --vacuum (once; it holds each file while it runs)"
        )


def db_purge(inst: Instance, args: argparse.Namespace) -> int:
    """``redctl db purge``: purge (or plan) now and print what happened."""
    from redpss.retention import purge_now  # only for this command (it loads the landing zone)

    config = inst.load_config()
    with open_instance_dictionary(inst, config) as d:
        report = purge_now(d, config, inst.home / "data", dry_run=args.dry_run)
        vacuumed = d.vacuum() if args.vacuum else None
        if vacuumed is not None:
            report.bytes_after = d.storage_bytes()
    if args.json:
        print(json.dumps(_as_json(report, vacuumed), indent=2))
    else:
        _print(inst, report, vacuumed)
    return 0
