"""OpenLineage run events of a real instance, received by a real HTTP server on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from redpss.instance import Instance
from tests.conftest import run_cli, wait_for

DEFS = """
[loader.sales]
pattern = '^sales_.*\\.csv$'
target = "DEMO.SALES"
columns = [
  { name = "ID", type = "DECIMAL(18,0)" },
  { name = "AMOUNT", type = "DECIMAL(12,2)" },
]

[job.load_sales]
schema = "DEMO"
kind = "LOAD"
action = "sales"
pool = "loader"

[watcher.sales_files]
schema = "DEMO"
kind = "FILE"
pattern = '^sales_'
interval = 1
executor = "load_sales"

[job.broken]
schema = "DEMO"
kind = "SQL"
action = "SELECT * FROM NO_SUCH_TABLE"
"""


class Receiver:
    """An OpenLineage receiver: every POST body (JSON) and its headers are kept."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.events.append(json.loads(body))
                received.headers.append(dict(self.headers))
                self.send_response(201)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def of(self, job: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["job"]["name"] == job]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def test_runs_send_start_and_end_with_inputs_and_outputs(
    make_instance: Callable[..., Instance], receiver: Receiver, tmp_path: Path
) -> None:
    (tmp_path / "key").write_text("s3cr3t-token\n")
    (tmp_path / "key").chmod(0o600)
    inst = make_instance(
        "ol1",
        lineage_url=receiver.url,
        lineage_namespace="dwh-test",
        lineage_api_key=f"file:{tmp_path / 'key'}",
        sched_definitions_poll="0.5",
        sched_file_quiet_period="0.3",
    )
    defs = tmp_path / "defs.toml"
    defs.write_text(DEFS)
    for args in (("db", "init"), ("db", "apply", str(defs)), ("start",)):
        out = run_cli("redctl", *args, inst=inst)
        assert out.returncode == 0, out.stdout + out.stderr
    try:
        (inst.home / "data" / "input" / "sales_1.csv").write_text("ID,AMOUNT\n1,9.99\n2,5.00\n")
        wait_for(lambda: len(receiver.of("load_sales")) >= 2, what="START and COMPLETE")
        start, end = receiver.of("load_sales")
        assert (start["eventType"], end["eventType"]) == ("START", "COMPLETE")
        assert start["run"]["runId"] == end["run"]["runId"]
        assert start["job"]["namespace"] == "dwh-test"
        assert start["job"]["facets"]["jobType"]["jobType"] == "LOAD"
        path = str(inst.home / "data" / "input" / "sales_1.csv")
        assert [i["name"] for i in start["inputs"]] == [path]
        assert [i["name"] for i in end["inputs"]] == [path]
        (out,) = end["outputs"]
        assert out["name"] == "DEMO.SALES"
        assert [f["name"] for f in out["facets"]["schema"]["fields"]] == ["ID", "AMOUNT"]
        assert out["outputFacets"]["outputStatistics"]["rowCount"] == 2
        assert end["run"]["facets"]["processing_engine"]["name"] == "redpss"
        assert receiver.headers[0]["Authorization"] == "Bearer s3cr3t-token"

        assert run_cli("redctl", "start_db_job", "broken", inst=inst).returncode == 0
        wait_for(lambda: len(receiver.of("broken")) >= 2, what="START and FAIL")
        start, fail = receiver.of("broken")
        assert (start["eventType"], fail["eventType"]) == ("START", "FAIL")
        assert fail["job"]["facets"]["sql"]["query"] == "SELECT * FROM NO_SUCH_TABLE"
        error = fail["run"]["facets"]["errorMessage"]
        assert "NO_SUCH_TABLE" in error["message"] and error["programmingLanguage"] == "SQL"
        assert fail["inputs"] == [] and fail["outputs"] == []
    finally:
        run_cli("redctl", "stop", inst=inst)
    assert "lineage: 4 events sent, 0 failed, 0 dropped" in (inst.log_dir / "sched.log").read_text()


def test_an_absent_receiver_never_stops_a_run(
    make_instance: Callable[..., Instance], tmp_path: Path
) -> None:
    receiver = Receiver()
    url = receiver.url
    receiver.close()  # nothing listens there any more
    inst = make_instance(
        "ol2",
        lineage_url=url,
        lineage_timeout="0.5",
        sched_definitions_poll="0.5",
        sched_file_quiet_period="0.3",
    )
    defs = tmp_path / "defs.toml"
    defs.write_text(DEFS)
    for args in (("db", "init"), ("db", "apply", str(defs)), ("start",)):
        assert run_cli("redctl", *args, inst=inst).returncode == 0
    try:
        (inst.home / "data" / "input" / "sales_1.csv").write_text("ID,AMOUNT\n1,9.99\n")
        wait_for(
            lambda: list((inst.home / "data" / "archive").glob("sales_1.csv*")),
            what="the file loaded all the same",
        )
    finally:
        run_cli("redctl", "stop", inst=inst)
    assert "event of run" in (inst.log_dir / "sched.log").read_text()
