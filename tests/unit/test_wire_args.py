"""Typed request arguments: what parse() takes, what it refuses, and how it names the field."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redpss.errors import BadArgs
from redpss.wire.args import Limits, arg, parse
from redpss.wire.ops import OPS, JexecRun, LogRequest, MailSend, SendFile, to_args

pytestmark = pytest.mark.unit

Word = Annotated[str, Limits(pattern=r"[a-z]+", what="a word")]


@dataclass(frozen=True)
class Inner:
    n: int = arg(low=1, high=10)
    tag: Word = "x"


@dataclass(frozen=True)
class Outer:
    name: str = arg(min_len=1, max_len=5)
    ratio: float | None = arg(None, above=0)
    mode: Literal["a", "b"] = "a"
    words: Word | list[Word] = arg(factory=list)
    inner: Inner | None = None
    many: list[Inner] = arg(factory=list, max_len=2)
    env: dict[str, str] = arg(factory=dict, pattern=r"X_[A-Z]+", what="an X_ name")
    any: Any = None
    flag: bool = False


def test_a_good_request_is_built() -> None:
    got = parse(
        Outer,
        {
            "name": "ab",
            "ratio": 2,
            "mode": "b",
            "words": "abc",
            "inner": {"n": 3},
            "many": [{"n": 1, "tag": "q"}],
            "env": {"X_Y": "1"},
            "any": [1, {"z": None}],
            "flag": True,
        },
    )
    assert got == Outer(
        "ab", 2.0, "b", "abc", Inner(3), [Inner(1, "q")], {"X_Y": "1"}, [1, {"z": None}], True
    )
    assert isinstance(got.ratio, float)
    assert parse(Outer, {"name": "z"}) == Outer("z")
    assert parse(Outer, {"name": "z", "ratio": None}).ratio is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "'name' is missing"),
        ({"name": "z", "nope": 1, "also": 2}, "unknown argument(s) also, nope (known: any, "),
        ({"name": ""}, "'name' must not be empty"),
        ({"name": "toolong"}, "'name' has 7 characters; at most 5"),
        ({"name": 5}, "'name' must be a string"),
        ({"name": "a\0b"}, "'name' must not hold a NUL"),
        ({"name": "z", "ratio": 0}, "'ratio' must be above 0"),
        ({"name": "z", "ratio": True}, "'ratio' must be a number"),
        ({"name": "z", "ratio": float("nan")}, "'ratio' must be a finite number"),
        ({"name": "z", "ratio": float("inf")}, "'ratio' must be a finite number"),
        ({"name": "z", "mode": "c"}, "'mode' must be one of a, b, not 'c'"),
        ({"name": "z", "words": "A"}, "'words' must be a word, not 'A'"),
        ({"name": "z", "words": ["a", "B"]}, "'words[1]' must be a word"),
        ({"name": "z", "words": 3}, "'words' must be a word or a list of a word"),
        ({"name": "z", "inner": {"n": 0}}, "'inner.n' must be at least 1"),
        ({"name": "z", "inner": {"n": 11}}, "'inner.n' must be at most 10"),
        ({"name": "z", "inner": {"n": 2.0}}, "'inner.n' must be a whole number"),
        ({"name": "z", "inner": {"n": True}}, "'inner.n' must be a whole number"),
        ({"name": "z", "inner": {"n": 1, "m": 2}}, "unknown argument(s) of 'inner' m"),
        ({"name": "z", "inner": []}, "'inner' must be an object"),
        ({"name": "z", "many": [{}, {}, {}]}, "'many' has 3 entries; at most 2"),
        ({"name": "z", "many": [{"n": 1}, {"n": "x"}]}, "'many[1].n' must be a whole number"),
        ({"name": "z", "env": {"PATH": "/x"}}, "'env' may not have the key 'PATH' (an X_ name)"),
        ({"name": "z", "env": {"X_A": 1}}, "'env.X_A' must be a string"),
        ({"name": "z", "flag": "yes"}, "'flag' must be true or false"),
    ],
)
def test_what_is_refused_names_the_field(args: dict[str, Any], message: str) -> None:
    with pytest.raises(BadArgs) as info:
        parse(Outer, args)
    assert info.value.code == "bad_args"
    assert message in info.value.message


def _instances(cls: type[Any]) -> st.SearchStrategy[Any]:
    """Valid requests of ``cls``, drawn from the field types (enough for the round trip)."""
    text = st.text(
        alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\0\r\n"),
        max_size=20,
    )
    address = st.from_regex(r"[a-z]{1,8}@[a-z]{1,8}\.[a-z]{2,3}", fullmatch=True)
    strategies: dict[type[Any], dict[str, st.SearchStrategy[Any]]] = {
        LogRequest: dict(
            schema=st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True),
            lines=st.lists(text, min_size=1, max_size=5),
            source=st.none() | text,
        ),
        JexecRun: dict(
            command=text.filter(bool),
            args=st.lists(text, max_size=5),
            time_limit=st.none() | st.floats(0.001, 1e9),
            job=st.none() | text | st.integers(-(2**63) + 1, 2**63 - 1),
            env=st.dictionaries(st.from_regex(r"RED_[A-Z]{1,5}", fullmatch=True), text),
        ),
        MailSend: dict(
            to=address | st.lists(address, max_size=3),
            subject=text,
            body=text,
            html=st.booleans(),
            key=st.none() | text.filter(bool),
        ),
    }
    fields: dict[str, st.SearchStrategy[Any]] = strategies[cls]
    return st.builds(cls, **fields)


@pytest.mark.parametrize("cls", [LogRequest, JexecRun, MailSend])
@given(data=st.data())
def test_what_a_client_sends_is_what_the_server_gets(cls: type[Any], data: st.DataObject) -> None:
    """to_args then parse is the identity for every valid request (the JSON shape round trip)."""
    request = data.draw(_instances(cls))
    assert parse(cls, to_args(request)) == request


def test_every_request_field_is_a_type_parse_knows() -> None:
    """A field parse() cannot check would be a bug found only by a caller: find it here."""
    for role, ops in OPS.items():
        for op, cls in ops.items():
            for f in dataclasses.fields(cls):
                assert f.type, (role, op, f.name)
            parse(cls, _minimal(cls))  # no TypeError for a field type parse does not know


def _minimal(cls: type[Any]) -> dict[str, Any]:
    minimal: dict[str, dict[str, Any]] = {
        "LogRequest": {"schema": "S", "lines": ["x"]},
        "JexecRun": {"command": "x.sh"},
        "JexecKill": {"run_id": 1},
        "JexecWait": {"run_id": "7"},
        "MailSend": {"to": "a@b.c", "subject": "s"},
        "MailRequeue": {"id": "k0"},
        "SchedSubmit": {"items": [{"kind": "job", "name": "J"}]},
        "SchedStartJob": {"name": "J"},
        "SchedKill": {"run_id": "42"},
        "SchedTimetable": {"entries": [{"kind": "job", "name": "J", "next": None}]},
        "SendFile": {"schema": "S", "object": "T", "sftp": {}},
    }
    return minimal.get(cls.__name__, {})


def test_sendfile_where_takes_scalars_only() -> None:
    req = parse(SendFile, {"schema": "S", "object": "T", "where": {"A": None, "B": 1.5}})
    assert req.where == {"A": None, "B": 1.5}
    with pytest.raises(BadArgs, match=r"'where\.A'"):
        parse(SendFile, {"schema": "S", "object": "T", "where": {"A": [1]}})
