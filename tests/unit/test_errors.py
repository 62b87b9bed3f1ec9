"""One exception tree: every public exception class of redpss descends from RedpssError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import redpss
from redpss import errors

pytestmark = pytest.mark.unit

# modules that import optional, heavy or platform-bound libraries at import time are still
# imported: the package's runtime dependencies are installed wherever the tests run
MODULES = sorted(m.name for m in pkgutil.walk_packages(redpss.__path__, "redpss."))


def test_every_public_exception_is_in_the_tree() -> None:
    strays = []
    for name in MODULES:
        module = importlib.import_module(name)
        for attr, obj in vars(module).items():
            if not (inspect.isclass(obj) and issubclass(obj, BaseException)):
                continue
            if obj.__module__ != name or attr.startswith("_"):
                continue  # imported from elsewhere, or private to its module
            if not issubclass(obj, errors.RedpssError):
                strays.append(f"{name}.{attr}")
    assert strays == []


def test_the_tree_is_drawn_in_the_docstring() -> None:
    doc = errors.__doc__ or ""
    for name, obj in vars(errors).items():
        if inspect.isclass(obj) and issubclass(obj, errors.RedpssError):
            assert name in doc, f"{name} is not drawn in redpss/errors.py"


def test_moved_errors_keep_their_old_names() -> None:
    from redpss.sched import control, triggers

    assert triggers.DefinitionError is errors.DefinitionError
    assert control.NotFound is errors.NotFound
