"""The exasol tier: a real Exasol database from ``exasol/docker-db`` through testcontainers.

Kept minimal here (the Exasol issue fills it in): it starts the database, waits until SQL
answers, and checks the dictionary backend can reach it. Where the image cannot be pulled (no
registry, as in this project's CI) every test skips with that exact reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

IMAGE = os.environ.get("REDPSS_EXASOL_IMAGE", "exasol/docker-db:latest")
pytestmark = pytest.mark.timeout(1200)


def _pull_error() -> str | None:
    """None when the image is present or can be pulled, else why not."""
    try:
        import docker  # the client testcontainers uses
    except ImportError as exc:
        return f"docker client library missing: {exc}"
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # no engine: the reason is the message
        return (
            f"no Docker engine reachable (DOCKER_HOST={os.environ.get('DOCKER_HOST', '')}): {exc}"
        )
    try:
        client.images.get(IMAGE)
        return None
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.pull(IMAGE)
    except docker.errors.APIError as exc:
        return f"image {IMAGE} cannot be pulled: {exc.explanation or exc}"
    return None


@pytest.fixture(scope="module")
def exasol() -> Iterator[tuple[str, int]]:
    """A running exasol/docker-db: (host, port) of its SQL listener."""
    reason = _pull_error()
    if reason is not None:
        pytest.skip(reason)
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    container = DockerContainer(IMAGE).with_kwargs(privileged=True).with_exposed_ports(8563)
    with container:
        wait_for_logs(container, "All stages finished", timeout=900)
        yield container.get_container_host_ip(), int(container.get_exposed_port(8563))


def test_sql_answers(exasol: tuple[str, int]) -> None:
    """The database accepts a connection on its SQL port (pyexasol when installed)."""
    host, port = exasol
    pyexasol = pytest.importorskip("pyexasol")
    conn = pyexasol.connect(
        dsn=f"{host}:{port}",
        user="sys",
        password="exasol",
        encryption=True,
        websocket_sslopt={"cert_reqs": 0},
    )
    try:
        assert conn.execute("SELECT 1").fetchval() == 1
    finally:
        conn.close()
