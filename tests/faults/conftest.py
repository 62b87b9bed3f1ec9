"""Fixtures of the fault tier: whatever a test leaves running is ended, whatever it broke."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.instance import list_instances
from redpss.supervisor import end_leftovers, leftover_roles


@pytest.fixture(autouse=True)
def _no_leftover_roles(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test (passed or failed), kill role processes of its instances that run without
    supervisord: a fault test makes them on purpose, a failing one may leave them."""
    home: Path | None = (
        request.getfixturevalue("redhome") if "redhome" in request.fixturenames else None
    )
    yield
    if home is not None:
        for inst in list_instances(home):
            end_leftovers(leftover_roles(inst), grace=0)
