"""The status page (/ui) in headless Chromium (Debian's, driven by Playwright) against a running
instance, as an operator and a reader would use it: sign in, read, act with confirmations.
Screenshots go to ``artifacts/`` (gitignored); what they show is asserted on the page itself."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from redpss.dictionary import open_instance_dictionary
from redpss.instance import Instance
from redpss.mail.message import Composed
from redpss.mail.spool import Spool
from tests.conftest import free_port, run_cli, wait_for
from tests.integration.test_rest import RestInstance, start_rest_instance

MakeInstance = Callable[..., Instance]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (make sysdeps)"
)


@pytest.fixture
def browser() -> Iterator[Browser]:
    assert CHROMIUM is not None
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def open_page(browser: Browser, url: str) -> Page:
    # the test CA is not in Chromium's trust store; the page is what is tested here
    ctx = browser.new_context(ignore_https_errors=True, viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    page.set_default_timeout(30_000)
    page.goto(url)
    return page


def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.unlink(missing_ok=True)
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def loaded(page: Page) -> None:
    """Wait for a complete refresh of the page after the current one."""
    page.evaluate("document.body.dataset.loaded = ''")
    page.wait_for_selector("body[data-loaded=yes]")


def cells(page: Page, table: str) -> list[list[str]]:
    rows: list[list[str]] = page.eval_on_selector_all(
        f"#{table} tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    return rows


def confirm(page: Page, button: str, *, ok: bool = True) -> str:
    """Click ``button``, answer the confirmation, return the question it asked."""
    page.click(button)
    page.wait_for_selector("#confirm[open]")
    question = page.inner_text("#confirm-text")
    page.click("#confirm-ok" if ok else "#confirm button[value=cancel]")
    return question


def audit(inst: Instance) -> list[tuple[str, str, str]]:
    lines = (inst.log_dir / "audit.log").read_text().splitlines()
    return [
        (r["user"], r["command"], r["result"])
        for r in map(json.loads, lines)
        if r.get("tool") == "rest"
    ]


def seed(api: RestInstance) -> None:
    """What the page should show beyond a fresh instance: a long job to kill, a watcher error,
    a rejected file with its reason, a dead mail, an ALERT line of the database."""
    inst = api.inst
    hang = inst.home / "cmd" / "hang.sh"
    hang.parent.mkdir(exist_ok=True)
    hang.write_text("#!/bin/sh\nexec sleep 300\n")
    hang.chmod(0o755)
    defs = inst.tmp / "hang.toml"
    defs.write_text('[job.hang]\nschema = "DEMO"\nkind = "CMD"\naction = "hang.sh"\n')
    assert run_cli("redctl", "db", "apply", str(defs), inst=inst).returncode == 0
    # a CSV the loader refuses (a text in a DECIMAL column): error/ with the reason
    (inst.home / "data" / "input" / "sales_bad.csv").write_text("ID,AMOUNT\n1,lots\n")
    with open_instance_dictionary(inst, inst.load_config()) as d:
        d.record_exec_error("DEMO", "sales_files", "sales_old.csv", "load failed: bad file")
        d.log_message("DEMO", level="ALERT", message="nightly load is late", source="ops_check")
    spool = Spool(inst.home / "spool" / "sendmail")
    data = b"Subject: daily report\r\n\r\nhi\r\n"
    mail = Composed("red@example.com", ["ops@example.com"], "daily report", data, key=None)
    mail_id, _ = spool.put(mail)
    spool.kill(mail_id, "queue", "550 mailbox unavailable (relay refused the recipient)")


def test_signin_box_and_a_bad_token(make_instance: MakeInstance, browser: Browser) -> None:
    api = start_rest_instance(make_instance)
    page = open_page(browser, f"{api.base}/ui")
    page.wait_for_selector("#signin:not([hidden])")
    assert page.is_hidden("#main")
    assert "restctl token add" in page.inner_text("#signin")
    assert page.inner_text("#state") == "not signed in"
    shot(page, "ui-signin.png")

    page.fill("#token", "not-a-token")
    page.click("#login button[type=submit]")
    page.wait_for_selector("#login-error:has-text('not accepted')")
    assert "401" in page.inner_text("#login-error") and page.is_hidden("#main")
    shot(page, "ui-bad-token.png")

    page.fill("#token", api.reader)  # the right one now
    page.click("#login button[type=submit]")
    page.wait_for_selector("body[data-loaded=yes]")
    assert page.inner_text("#who") == "signed in as ro (reader)"
    revoked = run_cli("restctl", "token", "revoke", "ro", inst=api.inst)
    assert revoked.returncode == 0
    page.wait_for_selector("#login-error:has-text('revoked')", timeout=30_000)


def test_reader_sees_everything_and_no_button(
    make_instance: MakeInstance, browser: Browser
) -> None:
    api = start_rest_instance(make_instance)
    seed(api)
    wait_for(lambda: (api.inst.home / "data" / "error" / "sales_bad.csv").exists(),
             timeout=60, what="the bad CSV rejected into error/")  # fmt: skip
    page = open_page(browser, f"{api.base}/ui#token={api.reader}")
    page.wait_for_selector("body[data-loaded=yes]")
    assert "#token" not in page.url  # the token left the address bar
    wait_for(lambda: cells(page, "jobs") and any(r[8] != "-" for r in cells(page, "jobs")),
             timeout=40, what="a next run of a job")  # fmt: skip
    loaded(page)
    assert page.inner_text("#who") == "signed in as ro (reader)"
    assert page.inner_text("#state") in ("RUNNING", "DEGRADED")
    roles = {r[0]: r for r in cells(page, "roles")}
    assert {"sched", "jmon", "dbls", "rest"} <= set(roles)
    jobs = {r[0]: r for r in cells(page, "jobs")}
    assert jobs["heartbeat_table"][4] == "every 10s" and jobs["heartbeat_table"][8] != "-"
    assert {"hang", "load_sales"} <= set(jobs)
    watchers = {r[0]: r for r in cells(page, "watchers")}
    assert int(watchers["sales_files"][7]) >= 1  # the seeded executor error (and the bad CSV's)
    assert any("bad file" in r[4] for r in cells(page, "we"))
    assert cells(page, "loaders")[0][:2] == ["demo_sales", r"^sales_.*\.csv$"]
    rejected = {r[0]: r for r in cells(page, "lerr")}
    assert "sales_bad.csv" in rejected and rejected["sales_bad.csv"][1] != ""
    assert any(r[0] == "dead" and "550" in r[5] for r in cells(page, "mails"))
    assert any("nightly load is late" in r[4] and r[1] == "ALERT" for r in cells(page, "logmsg"))
    assert page.locator("#chart-runs canvas").count() == 1
    assert page.locator("#chart-durations canvas").count() == 1
    assert page.locator("button.act").count() == 0  # a reader sees no buttons
    assert page.inner_text("#err") == ""
    shot(page, "ui-reader.png")


def test_operator_acts_with_confirmations_and_audit(
    make_instance: MakeInstance, browser: Browser
) -> None:
    api = start_rest_instance(make_instance)
    seed(api)
    inst = api.inst
    page = open_page(browser, f"{api.base}/ui#token={api.operator}")
    page.wait_for_selector("body[data-loaded=yes]")
    assert page.inner_text("#who") == "signed in as ops (operator)"

    # suspend: cancelled first (nothing happens), then confirmed; resume
    question = confirm(page, "#instance-actions button", ok=False)
    assert question.startswith(f"Suspend instance {inst.name}")
    page.wait_for_selector("#notice:text-is('suspend: cancelled')")
    assert not inst.suspend_flag.exists()
    confirm(page, "#instance-actions button")
    page.wait_for_selector("#notice:has-text('suspend: done')")
    assert inst.suspend_flag.exists()
    page.wait_for_selector("#state:has-text('SUSPENDED')")
    page.wait_for_selector("#instance-actions button:has-text('resume')")
    confirm(page, "#instance-actions button")
    page.wait_for_selector("#notice:has-text('resume: done')")
    assert not inst.suspend_flag.exists()

    # toggle a job and a watcher
    row = "#jobs tr:has(td:text-is('heartbeat_table'))"
    confirm(page, f"{row} button:has-text('deactivate')")
    page.wait_for_selector(f"{row} button:has-text('activate'):not(:has-text('deactivate'))")
    confirm(page, f"{row} button:text-is('activate')")
    page.wait_for_selector(f"{row} button:has-text('deactivate')")
    wrow = "#watchers tr:has(td:text-is('sales_files'))"
    question = confirm(page, f"{wrow} button:has-text('reset errors')")
    assert re.match(r"Reset the \d+ executor error\(s\) of watcher sales_files", question)
    page.wait_for_selector("#we td:text-is('none')")

    # start the long job, see it run, kill it from the page
    confirm(page, "#jobs tr:has(td:text-is('hang')) button:has-text('start')")
    page.wait_for_selector("#notice:has-text('start: done')")
    run_id = int(re.search(r'"run_id":\s*(\d+)', page.inner_text("#notice")).group(1))  # type: ignore[union-attr]
    kill = f"#running tr:has(td:text-is('{run_id}')) button:has-text('kill')"
    page.wait_for_selector(kill, timeout=30_000)
    shot(page, "ui-operator.png")
    assert confirm(page, kill) == f"Kill run {run_id} of job hang?"
    page.wait_for_selector("#notice:has-text('kill: done')")

    # the runs: filter by job and state, the run's message names the token, its log lines
    page.fill("#f-job", "hang")
    page.select_option("#f-state", "KILLED")
    page.click("#runfilter button[type=submit]")
    # the filtered answer, not the table an earlier refresh drew (the run was in it, RUNNING)
    page.wait_for_function(
        "() => { const rows = [...document.querySelectorAll('#runs tbody tr')];"
        " return rows.length > 0 && rows.every(r => r.cells[3].textContent === 'KILLED'); }"
    )
    assert [(r[0], r[3]) for r in cells(page, "runs")] == [(str(run_id), "KILLED")]
    page.click(f"#runs td:text-is('{run_id}')")
    page.wait_for_selector("#run-detail:not([hidden])")
    assert "token ops with the REST API" in page.inner_text("#run-message")
    assert f"run={run_id}" in page.inner_text("#run-log")
    # paging: the heartbeat job's runs, 15 a page
    page.fill("#f-job", "")
    page.select_option("#f-state", "")
    since = datetime.now(UTC).replace(hour=0, minute=0, second=0).strftime("%Y-%m-%dT%H:%M")
    page.fill("#f-since", since)
    page.click("#runfilter button[type=submit]")
    page.wait_for_selector("#page:has-text('runs 1-')")
    if page.is_enabled("#next"):
        first = cells(page, "runs")[0][0]
        page.click("#next")
        page.wait_for_selector("#page:has-text('runs 16-')")
        assert cells(page, "runs")[0][0] != first
        assert page.is_enabled("#prev")
    shot(page, "ui-operator-runs.png")

    done = audit(inst)
    for command in ("suspend", "resume", "toggle job heartbeat_table",
                    "we_reset_error sales_files", "start job hang", f"kill {run_id}"):  # fmt: skip
        assert ("token:ops", command, "ok") in done, (command, done)
    assert not any(result.startswith("error") for _, _, result in done), done


def test_docs_redoc_and_ui_load_nothing_from_outside(
    make_instance: MakeInstance, tmp_path: Path
) -> None:
    """In a network namespace with nothing but loopback, /docs, /redoc and /ui render fully:
    every file they load comes from the instance's own server."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("unshare (util-linux) and ip (iproute2) are needed")
    inst = make_instance("off1")
    assert run_cli("redctl", "db", "init", inst=inst).returncode == 0
    assert run_cli("restctl", "cert", inst=inst).returncode == 0
    token = run_cli("restctl", "token", "add", "ro", "--role", "reader", inst=inst).stdout.strip()
    ARTIFACTS.mkdir(exist_ok=True)
    done = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "tests.integration.offline_pages",
         str(inst.redhome), inst.name, str(free_port()), token, str(ARTIFACTS)],
        capture_output=True, text=True, timeout=240, cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, **inst.environment()}, check=False,
    )  # fmt: skip
    if done.returncode != 0 and "Operation not permitted" in done.stderr:
        pytest.skip(f"no network namespace here: {done.stderr.strip()[-200:]}")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    found = report["found"]
    assert found["docs_title"].startswith(f"redpss REST API ({inst.name})")
    assert found["docs_operations"] >= 20
    assert found["redoc_title"].startswith(f"redpss REST API ({inst.name})")
    # uPlot came from the server: the rows chart is drawn (the others say "no data" yet)
    assert found["ui_who"] == "signed in as ro (reader)" and found["ui_charts"] >= 1
    local = ("https://127.0.0.1:", "blob:https://127.0.0.1:", "data:")
    outside = [u for u in report["asked"] if not u.startswith(local)]
    assert outside == [], outside
    assert report["failed"] == [], report["failed"]
    for name in ("docs-offline.png", "redoc-offline.png", "ui-offline.png"):
        assert (ARTIFACTS / name).stat().st_size > 10_000
