"""gunicorn's logs are a file a day under log/REST, written by every gunicorn process and
deleted by the log purge like every other log file (they used to grow for ever)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from redpss.instance import Instance
from redpss.logs import purge_old_logs
from redpss.rest import rest_log_dir
from tests.conftest import wait_for
from tests.integration.test_rest import start_rest_instance


def test_access_and_error_logs_are_a_file_a_day(make_instance: Callable[..., Instance]) -> None:
    api = start_rest_instance(make_instance)
    with api.client(api.reader) as c:
        for _ in range(20):  # both workers answer some of them
            assert c.get("/api/version").status_code == 200
    folder = rest_log_dir(api.inst)
    today = time.strftime("%Y-%m-%d")
    access, errors = folder / f"access-{today}.log", folder / f"gunicorn-{today}.log"
    wait_for(lambda: access.exists() and access.read_text().count("/api/version") == 20,
             what="20 lines of /api/version in today's access log")  # fmt: skip
    lines = access.read_text().splitlines()
    # none torn; the app writes them, with the token's name (gunicorn's own access log is off)
    shape = r'\S+ 127\.0\.0\.1 token=(ro|-) "GET /\S*" \d{3} [\d.]+ms'
    assert all(re.fullmatch(shape, line) for line in lines), lines
    assert "Booting worker" in errors.read_text() or "Listening at" in errors.read_text()
    assert not (folder / "access.log").exists() and not (folder / "gunicorn.log").exists()
    # an old day is deleted by jmon's log purge; today's file, held open, never
    old = folder / "access-2000-01-01.log"
    old.write_text("old\n")
    removed = purge_old_logs(api.inst.log_dir, 30, now=time.time() + 40 * 86400)
    assert old in removed and access.exists() and errors.exists()
