"""The ops' requests are the contract: every role serves what redpss.wire.ops says, and
docs/protocol.md documents every argument of every op."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from redpss.dictionary import open_dictionary
from redpss.instance import Instance, create_instance
from redpss.roles import role_class
from redpss.roles.base import RoleContext
from redpss.wire.ops import OPS

pytestmark = pytest.mark.unit

DOC = Path(__file__).parents[2] / "docs" / "protocol.md"


@pytest.mark.parametrize("role", sorted(OPS))
def test_each_role_serves_the_requests_of_ops(role: str, tmp_path: Path) -> None:
    inst = Instance("tst1", tmp_path)
    create_instance(inst, port_base=22000)
    dictionary = open_dictionary("sqlite", db_dir=inst.db_dir)
    handler = role_class(role)(RoleContext(inst, inst.load_config(), dictionary))
    server = handler.server  # type: ignore[attr-defined]  # every listening role has one
    assert server.requests == OPS[role]
    assert set(server.ops) == {*OPS[role], "ping"}  # no op without its request type


def _section(text: str, role: str, op: str) -> str:
    part = text.split(f"## Operations: {role}\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(rf"^### `{op}`.*?(?=^### |\Z)", part, re.S | re.M)
    assert match, f"docs/protocol.md has no section ### `{op}` under Operations: {role}"
    return match.group(0)


@pytest.mark.parametrize(
    ("role", "op"), [(role, op) for role, ops in sorted(OPS.items()) for op in sorted(ops)]
)
def test_docs_name_every_argument_of_every_op(role: str, op: str) -> None:
    section = _section(DOC.read_text(), role, op)
    cls = OPS[role][op]
    for f in dataclasses.fields(cls):
        assert f"`{f.name}`" in section, f"{role} {op}: argument {f.name} is not documented"
        nested = f.type if isinstance(f.type, str) else ""
        for inner in (c for c in _nested(cls) if c.__name__ in nested):
            for g in dataclasses.fields(inner):
                assert f"`{g.name}`" in section, f"{role} {op}: {f.name}.{g.name} undocumented"


def _nested(cls: type) -> list[type]:
    import typing

    hints = typing.get_type_hints(cls)
    out = []
    for hint in hints.values():
        for arg in (*typing.get_args(hint), hint):
            for inner in (*typing.get_args(arg), arg):
                if dataclasses.is_dataclass(inner) and isinstance(inner, type):
                    out.append(inner)
    return out
