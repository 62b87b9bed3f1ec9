"""The exasol tier skips only for its known causes; anything else fails the run."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import docker
import pytest

from tests.conftest import free_port
from tests.exasol.conftest import _unavailable


def test_a_missing_engine_socket_is_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert _unavailable() == (
        "no Docker engine reachable: its socket /nonexistent/docker.sock does not exist"
    )


def test_nothing_answering_is_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{free_port()}")
    reason = _unavailable()
    assert reason is not None and reason.startswith("no Docker engine reachable at tcp://")


class _Broken(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"message": "engine is broken"}')

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def broken_engine() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", free_port()), _Broken)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_an_engine_that_fails_is_an_error_not_a_skip(
    monkeypatch: pytest.MonkeyPatch, broken_engine: int
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{broken_engine}")
    with pytest.raises(docker.errors.APIError, match="engine is broken"):
        _unavailable()
