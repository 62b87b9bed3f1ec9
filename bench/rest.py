"""REST API latency: GET /api/status at 200 req/s for 30 s from a second process, and the bare
``/health`` endpoint of the same server in the same run (issue 9).

Creates a throw-away instance with ``rest_enabled`` under a temporary $REDHOME (trustme
certificates), starts it, measures, stops and removes it. The load generator is a separate
process (open loop: request i is sent at t0 + i/rate, whatever earlier ones do) over keep-alive
TLS connections. Targets: p99 of status < 20 ms, and its throughput at least 0.8 times the
bare endpoint's.

    python bench/rest.py [--rate 200] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redpss.instance import Instance, create_instance  # noqa: E402

BIN = Path(sys.executable).parent
TARGET_MS = 20.0


async def _load(url: str, token: str, ca: str, rate: float, seconds: float) -> dict[str, float]:
    import httpx

    ctx = ssl.create_default_context(cafile=ca)
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    headers = {"Authorization": f"Bearer {token}"}
    lat: list[float] = []
    errors = 0
    async with httpx.AsyncClient(verify=ctx, limits=limits, headers=headers, timeout=10) as c:
        await c.get(url)  # open a connection before the clock starts

        async def one() -> None:
            nonlocal errors
            t = time.perf_counter()
            try:
                r = await c.get(url)
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                lat.append((time.perf_counter() - t) * 1000)
            else:
                errors += 1

        n = int(rate * seconds)
        t0 = time.perf_counter()
        tasks = []
        for i in range(n):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
    lat.sort()
    return {
        "n": len(lat), "errors": errors, "throughput": len(lat) / elapsed,
        "p50": statistics.median(lat), "p99": lat[int(0.99 * (len(lat) - 1))],
    }  # fmt: skip


def _client_main(args: list[str]) -> None:
    url, token, ca, rate, seconds = args
    print(json.dumps(asyncio.run(_load(url, token, ca, float(rate), float(seconds)))))


def _cli(tool: str, inst: Instance, *args: str) -> str:
    env = {**os.environ, **inst.environment()}
    out = subprocess.run([str(BIN / tool), *args], env=env, capture_output=True, text=True,
                         check=False, stdin=subprocess.DEVNULL)  # fmt: skip
    if out.returncode not in (0, 1):
        raise SystemExit(f"{tool} {' '.join(args)} failed: {out.stdout}{out.stderr}")
    return out.stdout


def _setup(home: Path) -> tuple[Instance, str, str]:
    import trustme

    inst = Instance("bench", home)
    create_instance(inst)
    text = inst.conf_path.read_text()
    values = {"rest_enabled": "true", "exa_password": "tu-secret", "gu_workers": "2"}
    lines = [
        f"{line.split('=')[0].strip()} = {values[line.split('=')[0].strip()]}"
        if line.split("=")[0].strip() in values
        else line
        for line in text.splitlines()
    ]
    inst.conf_path.write_text("\n".join(lines) + "\n")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    folder = inst.etc / "ssl" / "REST"
    folder.mkdir(parents=True)
    (folder / "cert.pem").write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    ca_file = str(home / "ca.pem")
    ca.cert_pem.write_to_path(ca_file)
    token = _cli("restctl", inst, "token", "add", "bench", "--role", "reader").strip()
    _cli("redctl", inst, "start")
    import httpx

    port = inst.load_config().rest.gu_port
    base = f"https://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/health", verify=ssl.create_default_context(cafile=ca_file)):
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("the REST API did not come up within 60 s")
        time.sleep(0.2)
    return inst, base, token + "\n" + ca_file


def _measure(url: str, token: str, ca: str, rate: float, seconds: float) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--client", url, token, ca, str(rate), str(seconds)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main() -> int:
    """Run the benchmark; print the figures and the RESULT line."""
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        _client_main(sys.argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="rhb", dir="/tmp"))
    inst = None
    try:
        inst, base, secret = _setup(home)
        token, ca = secret.split("\n")
        figures = {}
        for name, path in (("status", "/api/status"), ("bare", "/health")):
            figures[name] = r = _measure(base + path, token, ca, args.rate, args.seconds)
            print(
                f"{name:<7} GET {path:<12} {r['n']:.0f} ok, {r['errors']:.0f} errors, "
                f"{r['throughput']:.1f} req/s, p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms"
            )
    finally:
        if inst is not None:
            _cli("redctl", inst, "stop")
        shutil.rmtree(home, ignore_errors=True)
    st, bare = figures["status"], figures["bare"]
    ratio = st["throughput"] / bare["throughput"]
    print(f"throughput status/bare: {ratio:.2f} (target >= 0.8)")
    ok = st["p99"] < TARGET_MS and ratio >= 0.8 and st["errors"] == 0
    print(f"RESULT rest value={st['p99']:.2f} unit=ms target=<{TARGET_MS:g} "
          f"ok={'yes' if ok else 'no'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
