"""Helpers for the service-role tests (dbls, jexec, sendmail …); their fixtures are in
``tests/integration/conftest.py``.

A role runs in-process on its real port with a real SQLite dictionary, so a test can reach it
over loopback and look at its files, and it always stops at the end.
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from redpss.config import load_config
from redpss.dictionary import LogMessage, open_dictionary
from redpss.errors import DictionaryError
from redpss.instance import Instance
from redpss.roles.base import Role, RoleContext
from tests.smtp_relay import Relay

MakeInstance = Callable[..., Instance]


@dataclass
class Stack:
    """The service roles of one instance, running (``make_stack``), and the relay sendmail
    delivers to."""

    ctx: RoleContext
    relay: Relay


def set_keys(inst: Instance, **settings: object) -> None:
    """Set ``[redsys]`` keys of the instance's red_params.conf (commented or absent ones too)."""
    lines = inst.conf_path.read_text().splitlines()
    out: list[str] = []
    pending = {k: str(v) for k, v in settings.items()}
    for line in lines:
        key = line.lstrip("#").split("=")[0].strip()
        if key in pending and "=" in line:
            out.append(f"{key} = {pending.pop(key)}")
        else:
            out.append(line)
    at = out.index("[redsys]") + 1
    out[at:at] = [f"{k} = {v}" for k, v in pending.items()]
    inst.conf_path.write_text("\n".join(out) + "\n")


def role_context(make_instance: MakeInstance, name: str = "tst1", **settings: Any) -> RoleContext:
    """A new instance with ``settings`` in ``[redsys]``, its initialised dictionary, a context."""
    inst = make_instance(name)
    set_keys(inst, **settings)
    config = load_config(inst.conf_path)
    dictionary = open_dictionary("sqlite", db_dir=inst.db_dir)
    dictionary.init()
    return RoleContext(inst, config, dictionary)


@contextlib.contextmanager
def running(role_cls: type[Role], ctx: RoleContext) -> Iterator[Role]:
    """Start a role in this process; always stop it."""
    role = role_cls(ctx)
    try:
        role.start()
        yield role
    finally:
        role.stop()


def log_messages(ctx: RoleContext, limit: int = 100) -> list[LogMessage]:
    """``ALL_LOG_MESSAGES`` as far as it can be read now.

    A schema that dbls is creating in the background may be seen half-made (its file exists,
    its table not yet): then this is empty, and the caller polls again.
    """
    try:
        return ctx.dictionary.all_log_messages(limit)
    except (DictionaryError, sqlite3.Error):
        return []


def outside_address() -> str | None:
    """A non-loopback IPv4 address of this host, if it has one."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing address
        addr = str(s.getsockname()[0])
        if not addr.startswith("127."):
            return addr
    return None
