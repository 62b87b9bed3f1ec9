"""JSON → CSV and Parquet → CSV conversion in the landing zone (roles json2csv, parq2csv).

A complete ``input/<stem><in suffix>`` is claimed into ``work/`` (claim kind ``J`` or ``P``),
converted with pyarrow batch by batch (bounded memory: one batch plus the writer's buffer) into
``work/<claim>.<stem><out suffix>.part``, and the result is *renamed* to
``input/<stem><out suffix>`` — where a CSV loader picks it up — so a half-written CSV is never
visible. Then the original goes to ``archive/`` (deleted after ``*_retention`` days); a file
that cannot be converted goes to ``error/`` with its sidecar. The CSV has a header line, ``,``
as separator, ``"`` quoting, UTF-8, and empty fields for nulls; nested fields follow the
flattening rule of :mod:`redpss.landing.streams`.

If the process dies after publishing the CSV but before archiving the original, recovery
converts the original again: the second CSV has the same content, and the loaders' ledger
archives it as a duplicate (policy SKIP) instead of loading it twice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv

from redpss.errors import FileRejected
from redpss.landing.lifecycle import (
    Claim,
    LandingZone,
    archive,
    claim,
    complete_files,
    complete_names,
    display_name,
    issued,
    purge_expired,
    reject,
    requeue,
    work_claims,
)
from redpss.landing.opened import open_regular
from redpss.landing.streams import json_batches, parquet_batches

__all__ = ["convert_file", "convert_pending", "recover_conversions", "waiting"]

log = logging.getLogger(__name__)

KINDS = {"JSON": "J", "PARQUET": "P"}


def convert_file(source: Path, target: Path, kind: str, *, max_record: int) -> int:
    """Write ``source`` (JSON or PARQUET) as CSV to ``target``; return the rows written."""
    if source.stat().st_size == 0:
        raise FileRejected("empty file (0 bytes)")
    batches: Iterator[pa.RecordBatch] = (
        json_batches(source, max_record=max_record) if kind == "JSON" else parquet_batches(source)
    )
    rows = 0
    writer: pa_csv.CSVWriter | None = None
    schema: pa.Schema | None = None
    try:
        for batch in batches:
            if writer is None:
                schema = batch.schema
                writer = pa_csv.CSVWriter(str(target), schema)
            elif not batch.schema.equals(schema):
                raise FileRejected(
                    f"the fields changed within the file: {batch.schema.names} after "
                    f"{schema.names if schema is not None else []}"
                )
            writer.write_batch(batch)
            rows += batch.num_rows
    except pa.ArrowException as exc:
        raise FileRejected(f"cannot write CSV: {exc}") from None
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        target.write_bytes(b"")
    return rows


def _publish(part: Path, folder: Path, name: str, claim_id: str) -> Path:
    stem, dot, suffix = name.rpartition(".")
    for candidate in (name, f"{stem}.{claim_id}{dot}{suffix}" if dot else f"{name}.{claim_id}"):
        with contextlib.suppress(FileExistsError):
            os.link(part, folder / candidate)
            os.unlink(part)
            return folder / candidate
    raise FileExistsError(name)


def _convert_one(zone: LandingZone, item: Claim, kind: str, out_suffix: str, in_suffix: str,
                 max_record: int) -> str:  # fmt: skip
    stem = item.name[: -len(in_suffix)] if item.name.endswith(in_suffix) else item.name
    out_name = stem + out_suffix
    part = zone.work / f"{item.claim_id}.{out_name}.part"
    try:
        with open_regular(item.path) as opened:  # read what was opened, never the name again
            rows = convert_file(opened.view, part, kind, max_record=max_record)
    except FileRejected as exc:
        part.unlink(missing_ok=True)
        return _refuse(zone, item, exc, f"{kind.lower()}2csv")
    except FileNotFoundError:
        part.unlink(missing_ok=True)
        return _refuse(zone, item, FileRejected("the file vanished while it was converted"), None)
    except OSError:
        part.unlink(missing_ok=True)
        requeue(zone, item)  # the disk, not the file: try again on a later poll
        raise
    published = _publish(part, zone.input, out_name, item.claim_id)
    archive(zone, item)
    return f"converted {item.shown} to {display_name(published.name)} ({rows} rows)"


def _refuse(zone: LandingZone, item: Claim, exc: FileRejected, by: str | None) -> str:
    """Reject a claim to ``error/``; when ``error/`` cannot take it, back to ``input/``."""
    try:
        reject(zone, item, exc.reason, loader=by, line=exc.line, byte=exc.byte)
    except OSError as err:
        back = requeue(zone, item)
        where = "put back into input/" if back else f"left in work/ as {item.path.name!r}"
        log.error("landing: %s rejected (%s) but error/ cannot take it: %s; %s",
                  item.name, exc, err, where)  # fmt: skip
        return f"not rejected {item.shown}: error/ cannot take it ({err}); {where}"
    return f"rejected {item.shown}: {exc}"


def convert_pending(
    zone: LandingZone,
    kind: str,
    *,
    in_suffix: str,
    out_suffix: str,
    quiet_period: float,
    max_record: int,
) -> list[str]:
    """Convert every complete ``*<in_suffix>`` file of ``input/``; say what was done."""
    pattern = re.compile(re.escape(in_suffix) + "$")
    done: list[str] = []
    for path in complete_files(zone.input, pattern, quiet_period=quiet_period, marker=False):
        item = claim(zone, path, kind=KINDS[kind])
        if item is None:
            continue
        message = _convert_one(zone, item, kind, out_suffix, in_suffix, max_record)
        log.info("landing: %s2csv %s", kind.lower(), message)
        done.append(message)
    return done


def waiting(zone: LandingZone, in_suffix: str) -> bool:
    """True while a ``*<in_suffix>`` file is in ``input/``, complete or not (the converter
    looks again soon instead of sleeping until the next arrival)."""
    pattern = re.compile(re.escape(in_suffix) + "$")
    return bool(complete_names(zone.input, pattern.search, quiet_period=0.0, marker=False))


def recover_conversions(zone: LandingZone, kind: str) -> list[str]:
    """At role start: drop half-written CSVs and requeue the originals a dead process held.

    Only claims this zone issued go back to ``input/``; anything else under a claim-shaped name
    goes to ``error/`` with the reason (as :func:`redpss.landing.recover` does for loaders).
    """
    letter = KINDS[kind]
    for part in zone.work.glob(f"{letter}*.part"):
        part.unlink(missing_ok=True)
    done = []
    for item in work_claims(zone, kind=letter):
        if item.name.endswith(".part"):
            continue
        if not issued(zone, item):
            reason = (
                "found in work/ under a claim name this instance did not issue: someone else "
                "put it there (or the instance secret changed since); not converted"
            )
            done.append(_refuse(zone, item, FileRejected(reason), None))
        elif requeue(zone, item) is not None:
            done.append(f"requeued {item.shown}")
    return done


def purge_originals(zone: LandingZone, suffix: str, retention_days: float) -> int:
    """Delete archived originals ``*<suffix>`` older than ``retention_days``."""
    return purge_expired(zone.archive, retention_days, suffix=suffix)
