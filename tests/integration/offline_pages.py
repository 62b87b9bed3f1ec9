"""Run inside an empty network namespace (``unshare -n``; only loopback is brought up): serve the
REST app of an instance over TLS with uvicorn and open /docs, /redoc and /ui in Debian's
Chromium. Prints one JSON object: what each page shows and every URL the browser asked for.

``python -m tests.integration.offline_pages REDHOME INSTANCE PORT TOKEN ARTIFACTS``
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import uvicorn
from playwright.sync_api import sync_playwright

from redpss.instance import Instance
from redpss.rest import CERT_FILE, KEY_FILE, ssl_dir
from redpss.rest.app import create_app


def main(argv: list[str]) -> int:
    home, name, port, token, artifacts = argv
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    inst = Instance(name, Path(home))
    config = uvicorn.Config(
        create_app(inst), host="127.0.0.1", port=int(port), log_level="warning",
        ssl_certfile=str(ssl_dir(inst) / CERT_FILE), ssl_keyfile=str(ssl_dir(inst) / KEY_FILE),
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise SystemExit("uvicorn did not start")
        time.sleep(0.05)
    base = f"https://127.0.0.1:{port}"
    asked: list[str] = []
    failed: list[str] = []
    found: dict[str, object] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        ctx = browser.new_context(ignore_https_errors=True, viewport={"width": 1300, "height": 900})
        page = ctx.new_page()
        page.set_default_timeout(30_000)
        page.on("request", lambda r: asked.append(r.url))
        page.on("requestfailed", lambda r: failed.append(r.url))

        page.goto(f"{base}/docs")
        page.wait_for_selector(".swagger-ui .info .title")
        page.wait_for_selector(".opblock-summary-path")
        found["docs_title"] = page.inner_text(".swagger-ui .info .title")
        found["docs_operations"] = page.locator(".opblock").count()
        page.screenshot(path=f"{artifacts}/docs-offline.png", full_page=False)

        page.goto(f"{base}/redoc")
        page.wait_for_selector("h1")
        page.wait_for_function("document.body.innerText.includes('/api/status')")
        found["redoc_title"] = page.inner_text("h1")
        page.screenshot(path=f"{artifacts}/redoc-offline.png", full_page=False)

        page.goto(f"{base}/ui#token={token}")
        page.wait_for_selector("body[data-loaded=yes]")
        found["ui_who"] = page.inner_text("#who")
        found["ui_charts"] = page.locator(".charts canvas").count()
        page.screenshot(path=f"{artifacts}/ui-offline.png", full_page=True)
        browser.close()
    server.should_exit = True
    thread.join(10)
    print(json.dumps({"found": found, "asked": asked, "failed": failed}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
