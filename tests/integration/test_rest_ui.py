"""The status page in headless Chromium against a running instance: visible content, and a
screenshot kept under ``artifacts/`` (gitignored)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from redpss.instance import Instance
from tests.integration.test_rest import start_rest_instance

MakeInstance = Callable[..., Instance]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
            # the test CA is not in Chromium's trust store; the page is what is tested here
            "--ignore-certificate-errors", "--virtual-time-budget=8000",
            *extra, url,
        ],
        capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make sysdeps)")
def test_status_page_shows_the_instance(make_instance: MakeInstance, tmp_path: Path) -> None:
    api = start_rest_instance(make_instance)
    url = f"{api.base}/ui#token={api.reader}"
    out = chromium(url, tmp_path / "profile", "--dump-dom")
    dom = out.stdout
    assert "redpss instance" in dom, out.stderr[-2000:]
    state = re.search(r'<span id="state" class="(a\d)">([A-Z]+)</span>', dom)
    assert state is not None and state.group(2) in ("RUNNING", "DEGRADED"), dom[:3000]
    roles = re.search(r'<table id="roles">(.*?)</table>', dom, re.S)
    assert roles is not None
    for role in ("sched", "jmon", "rest"):
        assert f"<td>{role}</td>" in roles.group(1)
    assert 'class="a0"' in roles.group(1)  # ALERT colours on the rows
    assert "<td>default</td>" in dom  # pools from /api/show
    assert re.search(r"<p id=\"err\"></p>", dom), re.search(r"<p id=\"err\">.*?</p>", dom)

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "rest-ui.png"
    shot.unlink(missing_ok=True)
    taken = chromium(url, tmp_path / "profile2", f"--screenshot={shot}", "--window-size=1200,1400")
    assert shot.is_file() and shot.stat().st_size > 10_000, taken.stderr[-2000:]
