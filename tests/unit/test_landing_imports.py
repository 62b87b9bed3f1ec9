"""What importing a part of redpss drags in: the file readers (and pyarrow) only where files load.

Each check runs in a fresh interpreter, so nothing another test imported can hide an import.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from redpss.instance import Instance, create_instance
from redpss.roles import ROLES

# The converters read JSON and Parquet with pyarrow; every other role must start without it.
CONVERTERS = ("json2csv", "parq2csv")


def _loaded_after(code: str, *, env: dict[str, str] | None = None) -> set[str]:
    """The names of the modules ``code`` left in ``sys.modules`` (run in a fresh interpreter)."""
    probe = textwrap.dedent(code) + "\nimport sys\nprint('\\n'.join(sorted(sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def _heavy(modules: set[str]) -> set[str]:
    return {m for m in modules if m == "pyarrow" or m.startswith("redpss.landing.readers")}


@pytest.mark.parametrize(
    "module",
    [
        "redpss.cli.redctl",
        "redpss.cli.redsysctl",
        "redpss.cli.restctl",
        "redpss.cli.redpss",
        "redpss.control",
        "redpss.status",
        "redpss.dictionary",
        "redpss.dictionary.loaders",
        "redpss.landing",
        "redpss.sched.definitions",
        "redpss.rest.app",
    ],
)
def test_the_cli_and_the_dictionary_do_not_import_the_readers(module: str) -> None:
    assert _heavy(_loaded_after(f"import {module}")) == set()


@pytest.mark.parametrize("role", [name for name in ROLES if name not in CONVERTERS])
def test_a_role_other_than_the_converters_does_not_import_pyarrow(role: str) -> None:
    code = f"from redpss.roles import role_class\nrole_class({role!r})"
    assert _heavy(_loaded_after(code)) == set()


def test_the_dictionary_does_not_import_the_landing_zone() -> None:
    loaded = _loaded_after("import redpss.dictionary.sqlite, redpss.dictionary.exasol")
    assert {m for m in loaded if m.startswith("redpss.landing")} == set()


def test_a_health_check_does_not_import_pyarrow(tmp_path: Path) -> None:
    inst = Instance("hc1", tmp_path)
    create_instance(inst, port_base=21000)
    code = f"""
        import os
        os.environ["REDHOME"] = {str(tmp_path)!r}
        from redpss.cli.redpss import main
        assert main(["role", "dbls", "--check", "--instance", "hc1"]) == 1  # no heartbeat recorded
    """
    assert _heavy(_loaded_after(code)) == set()


def test_a_load_does_import_the_readers() -> None:
    """The counter-check: the probe sees the readers when they are imported."""
    assert "pyarrow" in _loaded_after("import redpss.landing.readers")
