"""A load the database could not finish leaves the file to be loaded again, on every backend.

``load_rows`` raises DictionaryError when the database is away or the connection broke in the
middle of a load (nothing committed). The file is fine: it goes back to ``input/``, never to
``error/``, and the next run loads it — once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pytest

from redpss.dictionary import Dictionary
from redpss.dictionary.landing import LedgerEntry, LoadOutcome
from redpss.dictionary.loaders import Loader
from redpss.errors import DictionaryError, LoadError
from redpss.instance import Instance
from redpss.landing import parse_loader, recover, run_load, zone_of
from redpss.landing.lifecycle import claim

pytestmark = pytest.mark.unit

GOOD = "ID,NAME\n1,anna\n2,bob\n"
SALES = parse_loader(
    "sales",
    {
        "pattern": r"^sales",
        "target": "DWH.SALES",
        "columns": [
            {"name": "ID", "type": "DECIMAL(18,0)"},
            {"name": "NAME", "type": "VARCHAR(9)"},
        ],
    },
)


class BreaksOnce:
    """A dictionary whose first load reads a row, then loses the database."""

    def __init__(self, inner: Dictionary) -> None:
        self.inner = inner
        self.breaks = 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def load_rows(
        self, loader: Loader, rows: Iterable[Sequence[object]], *, entry: LedgerEntry
    ) -> LoadOutcome:
        if self.breaks:
            self.breaks -= 1
            next(iter(rows))
            raise DictionaryError("load of a file: the connection broke, nothing was committed")
        return self.inner.load_rows(loader, rows, entry=entry)


def _load(inst: Instance, dic: Any, key: str | None = None, run_id: int = 1) -> Any:
    config = inst.load_config()
    config = dataclasses.replace(
        config, redsys=dataclasses.replace(config.redsys, sched_file_quiet_period=0.0)
    )
    return run_load(
        instance=inst, config=config, dictionary=dic, loader="sales", key=key, run_id=run_id,
        schema="DWH",
    )  # fmt: skip


def test_a_broken_load_requeues_the_file_and_the_next_run_loads_it_once(
    any_dic: Dictionary, make_instance: Callable[..., Instance]
) -> None:
    inst = make_instance("tst1")
    zone = zone_of(inst, inst.load_config())
    any_dic.upsert_loader(SALES)
    (zone.input / "sales_1.csv").write_text(GOOD)
    with pytest.raises(LoadError, match="the connection broke"):
        _load(inst, BreaksOnce(any_dic), key="sales_1.csv")
    assert (zone.input / "sales_1.csv").read_text() == GOOD
    assert list(zone.error.iterdir()) == [] and list(zone.work.iterdir()) == []
    assert any_dic.target_row_count("DWH", "SALES") == 0 and any_dic.load_ledger() == []
    result = _load(inst, any_dic, run_id=2)
    assert (result.files, result.rows, result.errors) == (1, 2, 0)
    assert any_dic.target_row_count("DWH", "SALES") == 2
    assert (zone.archive / "sales_1.csv").exists() and list(zone.error.iterdir()) == []


def test_recover_requeues_a_claim_the_database_never_committed(
    any_dic: Dictionary, make_instance: Callable[..., Instance]
) -> None:
    inst = make_instance("tst1")
    zone = zone_of(inst, inst.load_config())
    (zone.input / "sales_2.csv").write_text(GOOD)
    item = claim(zone, zone.input / "sales_2.csv")  # a process died during the load
    assert item is not None
    assert recover(inst, any_dic) == [
        f"requeued sales_2.csv (claim {item.claim_id} was not committed)"
    ]
    assert (zone.input / "sales_2.csv").exists() and list(zone.error.iterdir()) == []
