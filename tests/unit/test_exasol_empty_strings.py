"""``''`` in a NOT NULL text column: both backends refuse it alike, naming the column.

In Exasol ``''`` *is* NULL, so a NOT NULL column refuses it (a constraint violation, after the
statement was sent); SQLite keeps ``''``. Before, the same definition was stored on the embedded
dictionary and refused on Exasol. Columns whose model default is ``''`` (a loader's
``NULL_STRING``, ``TIMESTAMP_FORMAT``) take it on both (Exasol: nullable, read back as ``''``).
"""

from __future__ import annotations

import pytest

from redpss.dictionary import Dictionary
from redpss.dictionary.jobs import JobDef, WatcherDef
from redpss.dictionary.loaders import parse_loader
from redpss.errors import DictionaryError

pytestmark = pytest.mark.unit


def test_an_empty_action_is_refused_on_both_backends(any_dic: Dictionary) -> None:
    with pytest.raises(DictionaryError, match=r"ADM_JOBS\.ACTION_TEXT must not be empty"):
        any_dic.apply_definitions([JobDef("j", "DWH", "SQL", "")], [])
    with pytest.raises(DictionaryError, match=r"ADM_WATCHER\.WATCH_TEXT must not be empty"):
        any_dic.apply_definitions([], [WatcherDef("w", "DWH", "FILE", "", executor_job="j")])
    assert any_dic.jobs() == [] and any_dic.watchers() == []


def test_an_empty_watch_key_is_refused_on_both_backends(any_dic: Dictionary) -> None:
    with pytest.raises(DictionaryError, match=r"WATCH_KEY must not be empty"):
        any_dic.record_exec_error("DWH", "w", "", "it failed")
    assert any_dic.exec_errors() == []


def test_empty_defaults_still_round_trip(any_dic: Dictionary) -> None:
    loader = parse_loader(
        "l", {"pattern": "^l", "target": "DWH.T", "null": "", "timestamp_format": "",
              "columns": [{"name": "A", "type": "VARCHAR(3)"}]},
    )  # fmt: skip
    any_dic.upsert_loader(loader)
    found = any_dic.loader("l")
    assert found is not None and (found.null_string, found.timestamp_format) == ("", "")
