"""The REST API end to end: a real instance with rest_enabled, gunicorn started by the stack,
httpx over real TLS (trustme certificates), restctl as a user runs it."""

from __future__ import annotations

import json
import re
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trustme

from redpss.instance import Instance
from redpss.rest import audit_path, rest_log_dir, ssl_dir
from redpss.rest.tls import READY_TIMEOUT
from tests.conftest import run_cli, wait_for

MakeInstance = Callable[..., Instance]
DEMO = Path(__file__).resolve().parents[2] / "conf" / "demo-definitions.toml"


@dataclass
class RestInstance:
    """A running instance with its API, a CA the client trusts, and two tokens."""

    inst: Instance
    base: str
    ca: trustme.CA
    reader: str
    operator: str

    def client(self, token: str | None = None) -> httpx.Client:
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base, verify=ctx, headers=headers, timeout=30)


def write_certs(inst: Instance, ca: trustme.CA) -> None:
    """Server certificate and key for 127.0.0.1 into ``etc/ssl/REST``."""
    cert = ca.issue_cert("127.0.0.1", "localhost")
    folder = ssl_dir(inst)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cert.pem").write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))


def token(inst: Instance, name: str, role: str) -> str:
    out = run_cli("restctl", "token", "add", name, "--role", role, inst=inst)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def start_rest_instance(make_instance: MakeInstance, *, certs: bool = True) -> RestInstance:
    """Create, configure and start an instance whose API runs; the factory cleans up."""
    inst = make_instance("rst1", rest_enabled="true", exa_password="tu-secret", gu_workers="2")
    ca = trustme.CA()
    if certs:
        write_certs(inst, ca)
    assert run_cli("redctl", "db", "init", inst=inst).returncode == 0
    applied = run_cli("redctl", "db", "apply", str(DEMO), inst=inst)
    assert applied.returncode == 0, applied.stderr
    reader, operator = token(inst, "ro", "reader"), token(inst, "ops", "operator")
    started = run_cli("redctl", "start", inst=inst)
    # 1 (degraded) while the API is not up yet, or when a role of another issue restarts
    assert started.returncode in (0, 1), started.stdout + started.stderr
    port = inst.load_config().rest.gu_port
    api = RestInstance(inst, f"https://127.0.0.1:{port}", ca, reader, operator)
    if certs:
        # the rest role itself gives gunicorn READY_TIMEOUT for its first handshake (and
        # supervisord starts it again after that): a shorter wait failed on a busy host (load 13)
        try:
            wait_for(lambda: serves(api), timeout=2 * READY_TIMEOUT, what="the REST API over TLS")
        except pytest.fail.Exception as exc:
            pytest.fail(f"{exc}\n{_rest_state(inst)}")
    return api


def serves(api: RestInstance) -> bool:
    try:
        with api.client() as c:  # a short timeout: one hung request must not use the wait up
            return c.get("/health", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def _rest_state(inst: Instance) -> str:
    """What an operator would look at when the API does not come up: status and the logs."""
    status = run_cli("redctl", "status", inst=inst)
    logs = [inst.log_dir / "rest.log", *sorted(rest_log_dir(inst).glob("gunicorn-*.log"))]
    tails = [
        f"{path}:\n" + "\n".join(path.read_text(errors="replace").splitlines()[-15:])
        for path in logs
        if path.exists()
    ]
    return "\n".join([status.stdout + status.stderr, *tails])


@pytest.fixture
def api(make_instance: MakeInstance) -> Iterator[RestInstance]:
    yield start_rest_instance(make_instance)


def audit(inst: Instance) -> list[dict[str, object]]:
    lines = audit_path(inst).read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_reads_need_a_token_and_answer(api: RestInstance) -> None:
    with api.client() as anon:
        assert anon.get("/health").json() == {"status": "ok", "instance": "rst1"}
        assert anon.get("/api/status").status_code == 401
        assert anon.get("/metrics").status_code == 401
        assert "redpss instance" in anon.get("/ui").text
        assert anon.get("/openapi.json").json()["paths"]["/api/runs"]
    with api.client("not-a-token") as wrong:
        assert wrong.get("/api/status").status_code == 401
        assert wrong.get("/api/jobs").status_code == 401
    with api.client(api.reader) as c:
        st = c.get("/api/status").json()
        assert st["instance"] == "rst1" and st["exit_code"] in (0, 1), st
        roles = {r["role"]: r for r in st["roles"]}
        assert roles["rest"]["state"] == "RUNNING" and roles["sched"]["alert"] == 0
        assert c.get("/api/version").json()["redpss"] == st["version"]
        show = c.get("/api/show").json()
        assert {"default", "loader", "action"} <= set(show["pools"])
        every = c.get("/api/jobs")
        assert "link" not in every.headers  # all of them: nothing follows
        jobs = {j["job"]: j for j in every.json()}
        assert {"heartbeat_table", "load_sales"} <= set(jobs)
        # a page at a time: a Link header names the next page while more follow
        paged, path = [], "/api/jobs?limit=1"
        while path:
            page = c.get(path)
            assert page.status_code == 200 and len(page.json()) == 1, page.text
            paged += page.json()
            nxt = re.fullmatch(r'<([^>]+)>; rel="next"', page.headers.get("link", ""))
            path = nxt.group(1) if nxt else ""
        assert paged == every.json()
        assert c.get(f"/api/jobs?limit=2&offset={len(jobs)}").json() == []
        assert c.get("/api/jobs?limit=0").status_code == 422
        detail = c.get("/api/jobs/heartbeat_table").json()
        assert detail["job"]["name"] == "heartbeat_table" and "runs" in detail
        missing = c.get("/api/jobs/heartbeat_tabel")
        assert missing.status_code == 404 and "heartbeat_table" in missing.json()["detail"]
        assert [w["watcher"] for w in c.get("/api/watchers").json()] == ["sales_files"]
        assert c.get("/api/watchers/sales_files").json()["watcher"]["executor_job"] == "load_sales"
        assert c.get("/api/watchers/errors").json() == []
        assert c.get("/api/watchers/errors", params={"watcher": "nope"}).status_code == 404
        assert c.get("/api/landing").json() == {"input": 0, "work": 0, "error": 0, "archive": 0}
        assert c.get("/api/landing/errors").json() == []
        assert c.get("/api/sendmail").json()["queue"] == 0
        assert c.get("/api/runs", params={"limit": 0}).status_code == 422
        metrics = c.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        assert 'redpss_role_alert{role="rest"} 0' in metrics.text
        assert 'redpss_pool_size{pool="default"}' in metrics.text
        assert 'redpss_landing_files{folder="input"} 0' in metrics.text
        # a reader may not act: 403, and the attempt is audited
        assert c.post("/api/suspend").status_code == 403
        assert c.post("/api/jobs/heartbeat_table/toggle").status_code == 403
    assert {"user": "token:ro", "result": "403"}.items() <= audit(api.inst)[-1].items()


def test_actions_runs_landing_and_audit(api: RestInstance) -> None:
    inst = api.inst
    error = inst.home / "data" / "error"
    error.mkdir(parents=True, exist_ok=True)
    (error / "bad.csv").write_text("x")
    (error / "bad.csv.error.json").write_text(json.dumps({"file": "bad.csv", "reason": "line 2"}))
    with api.client(api.operator) as c:
        started = c.post("/api/jobs/heartbeat_table/start")
        assert started.status_code == 200, started.text
        run_id = started.json()["run_id"]

        def finished() -> object:
            runs = c.get("/api/runs", params={"job": "heartbeat_table", "state": "OK"}).json()
            return [r for r in runs["runs"] if r["run_id"] == run_id]

        wait_for(finished, timeout=30, what="the started run in the run log")
        page = c.get("/api/runs", params={"limit": 1, "offset": 0, "since": "2000-01-01T00:00:00"})
        assert len(page.json()["runs"]) == 1
        future = c.get("/api/runs", params={"since": "2999-01-01T00:00:00Z"}).json()
        assert future["runs"] == []
        assert c.post("/api/jobs/heartbeat_table/toggle").json() == {
            "name": "heartbeat_table",
            "active": False,
        }
        assert c.get("/api/jobs/heartbeat_table").json()["job"]["active"] is False
        assert c.post("/api/watchers/sales_files/toggle").json()["active"] is False
        assert c.post("/api/jobs/nope/start").status_code == 404
        reset = c.post("/api/watchers/errors/reset").json()
        assert reset == {"action": "we_reset_error", "changed": False, "detail": {"reset": 0}}
        assert c.post("/api/suspend").json() == {"action": "suspend", "changed": True, "detail": {}}
        # each worker keeps a status snapshot for up to a second
        wait_for(lambda: c.get("/api/status").json()["state"] == "SUSPENDED", what="SUSPENDED")
        assert c.post("/api/suspend").json()["changed"] is False
        assert c.post("/api/resume").json()["changed"] is True
        assert c.post("/api/reload").json()["changed"] is True
        assert c.get("/api/landing").json()["error"] == 1
        errors = c.get("/api/landing/errors").json()
        assert errors[0]["name"] == "bad.csv" and errors[0]["reason"] == "line 2"
    records = [r for r in audit(inst) if r["tool"] == "rest"]  # redctl writes there too
    done = [(r["user"], r["command"], r["result"]) for r in records]
    assert ("token:ops", "start job heartbeat_table", "ok") in done
    assert ("token:ops", "toggle job heartbeat_table", "ok") in done
    assert ("token:ops", "suspend", "ok") in done
    assert any(w == "start job nope" and str(res).startswith("not found") for _, w, res in done)
    fields = {"time", "user", "host", "tool", "command", "result", "exit_code"}
    assert all(fields <= set(r) for r in records)


def test_an_operator_kills_a_run_a_reader_may_not(api: RestInstance) -> None:
    inst = api.inst
    hang = inst.home / "cmd" / "hang.sh"
    hang.parent.mkdir(exist_ok=True)
    hang.write_text('#!/bin/sh\necho "$$" > "$REDENV_HOME/tmp/hang.pid"; exec sleep 300\n')
    hang.chmod(0o755)
    defs = inst.tmp / "hang.toml"
    defs.write_text('[job.hang]\nschema = "DEMO"\nkind = "CMD"\naction = "hang.sh"\n')
    assert run_cli("redctl", "db", "apply", str(defs), inst=inst).returncode == 0
    with api.client(api.operator) as c:
        started = c.post("/api/jobs/hang/start")
        assert started.status_code == 200, started.text
        run_id = started.json()["run_id"]
        pidfile = inst.home / "tmp" / "hang.pid"
        wait_for(pidfile.exists, timeout=20, what="the command running")
        with api.client(api.reader) as r:
            assert r.post(f"/api/runs/{run_id}/kill").status_code == 403
        killed = c.post(f"/api/runs/{run_id}/kill")
        assert killed.status_code == 200, killed.text
        assert killed.json()["state"] == "KILLED"
        again = c.post(f"/api/runs/{run_id}/kill")
        assert again.status_code == 409 and "not queued or running" in again.json()["detail"]
        runs = c.get("/api/runs", params={"job": "hang"}).json()["runs"]
    assert runs[0]["state"] == "KILLED" and "token ops with the REST API" in runs[0]["message"]
    done = [(r["user"], r["command"], r["result"]) for r in audit(inst) if r["tool"] == "rest"]
    assert ("token:ops", f"kill {run_id}", "ok") in done


def test_plain_http_is_refused(api: RestInstance) -> None:
    plain = api.base.replace("https://", "http://")
    with pytest.raises(httpx.TransportError), httpx.Client(timeout=5) as c:
        c.get(f"{plain}/health")


def test_restctl_status_stop_start_and_tokens(api: RestInstance) -> None:
    inst = api.inst
    st = run_cli("restctl", "status", inst=inst)
    assert st.returncode == 0 and "RUNNING" in st.stdout, st.stdout + st.stderr
    assert run_cli("restctl", "stop", inst=inst).returncode == 0
    assert run_cli("restctl", "status", inst=inst).returncode == 3
    with pytest.raises(httpx.TransportError), api.client(api.reader) as c:
        c.get("/health")
    assert run_cli("restctl", "start", inst=inst).returncode == 0
    assert serves(api)
    with api.client(api.reader) as c:
        assert c.get("/api/status").status_code == 200
    restart = run_cli("restctl", "restart", inst=inst)
    assert restart.returncode == 0, restart.stderr
    assert run_cli("restctl", "status", inst=inst).returncode == 0
    assert run_cli("restctl", inst=inst).returncode == 2
    assert run_cli("restctl", "bogus", inst=inst).returncode == 2

    listed = run_cli("restctl", "token", "list", inst=inst).stdout
    assert "ro" in listed and "operator" in listed and api.reader not in listed
    stored = (inst.etc / "rest_tokens.json").read_text()
    assert api.reader not in stored and api.operator not in stored
    assert (inst.etc / "rest_tokens.json").stat().st_mode & 0o777 == 0o600
    assert run_cli("restctl", "token", "revoke", "ro", inst=inst).returncode == 0
    with api.client(api.reader) as c:
        assert c.get("/api/status").status_code == 401
    assert run_cli("restctl", "token", "revoke", "ro", inst=inst).returncode == 1

    assert run_cli("redctl", "stop", inst=inst).returncode == 0
    assert run_cli("restctl", "status", inst=inst).returncode == 3
    assert run_cli("restctl", "start", inst=inst).returncode == 1


def test_missing_certificate_is_named(make_instance: MakeInstance) -> None:
    api = start_rest_instance(make_instance, certs=False)
    cert = ssl_dir(api.inst) / "cert.pem"
    out = run_cli("restctl", "start", inst=api.inst)
    assert out.returncode == 1 and str(cert) in out.stderr, out.stderr
    assert str(cert) in (api.inst.log_dir / "rest.log").read_text()
    st = run_cli("restctl", "status", inst=api.inst)
    assert st.returncode in (1, 3), st.stdout


def test_status_says_why_rest_exited_and_restctl_cert_mends_it(
    make_instance: MakeInstance,
) -> None:
    api = start_rest_instance(make_instance, certs=False)
    inst = api.inst

    def rest_row() -> dict[str, object] | None:
        doc = json.loads(run_cli("redctl", "--json", "status", inst=inst).stdout)
        row: dict[str, object] = next(r for r in doc["roles"] if r["role"] == "rest")
        return row if "failed to start" in str(row["reason"]) else None

    row = wait_for(rest_row, timeout=60, what="supervisord giving up on rest")
    assert "cert.pem cannot be read" in str(row["reason"]), row
    plain = run_cli("redctl", "status", inst=inst).stdout
    assert "failed to start: REST API certificate" in plain

    made = run_cli("restctl", "--json", "cert", inst=inst)
    assert made.returncode == 0, made.stdout + made.stderr
    doc = json.loads(made.stdout)
    assert doc["made"] is True and len(doc["sha256"]) == 95  # 32 bytes as AB:CD:...
    assert oct((ssl_dir(inst) / "key.pem").stat().st_mode & 0o777) == "0o600"
    again = run_cli("restctl", "--json", "cert", inst=inst)
    assert json.loads(again.stdout)["made"] is False
    started = run_cli("restctl", "start", inst=inst)
    assert started.returncode == 0, started.stdout + started.stderr
    ctx = ssl.create_default_context(cafile=str(ssl_dir(inst) / "cert.pem"))
    port = inst.load_config().rest.gu_port
    with httpx.Client(verify=ctx, timeout=30) as c:  # the self-signed certificate verifies
        assert c.get(f"https://127.0.0.1:{port}/health").status_code == 200


def test_access_log_names_the_token_and_rest_runs_carry_it(api: RestInstance) -> None:
    inst = api.inst
    with api.client(api.reader) as r:
        assert r.get("/api/status").status_code == 200
    with api.client("wrong") as w:
        assert w.get("/api/jobs").status_code == 401
    with api.client(api.operator) as c:
        started = c.post("/api/jobs/heartbeat_table/start")
        assert started.status_code == 200, started.text
        run_id = started.json()["run_id"]

        def ended() -> dict[str, object] | None:
            rows = c.get("/api/runs", params={"job": "heartbeat_table", "limit": 50}).json()
            found = [x for x in rows["runs"] if x["run_id"] == run_id and x["ended_at"]]
            return found[0] if found else None

        run = wait_for(ended, timeout=30, what="the REST-started run ending")
    assert "token ops with the REST API" in str(run["message"]), run
    assert "redctl" not in str(run["message"])

    day = time.strftime("%Y-%m-%d")  # DailyFile: the local date
    lines = (inst.log_dir / "REST" / f"access-{day}.log").read_text().splitlines()
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00"
    assert any(re.fullmatch(stamp + r' 127\.0\.0\.1 token=ro "GET /api/status" 200 [\d.]+ms', x)
               for x in lines), lines[-5:]  # fmt: skip
    assert any('token=- "GET /api/jobs" 401' in x for x in lines)
    assert any('token=ops "POST /api/jobs/heartbeat_table/start" 200' in x for x in lines)
    assert api.operator not in "\n".join(lines) and api.reader not in "\n".join(lines)
