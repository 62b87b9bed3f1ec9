"""REST API latency: GET /api/status at 200 req/s from a second process, against the bare
``/health`` endpoint of the same server (issue 9).

Creates a throw-away instance with ``rest_enabled`` under a temporary $REDHOME (trustme
certificates), starts it, measures, stops and removes it. The load generator is a separate
process (open loop: request i is sent at t0 + i/rate, whatever earlier ones do) over keep-alive
TLS connections. Targets: p99 of status < 20 ms, and its throughput at least 0.8 times the
bare endpoint's.

Holding still (issue 20, bench/lib/pairing.py): a measured run is a fixed span of
``--seconds`` (default 10 s, 2 000 requests: already >= 1 s, nothing to grow); ``--pairs``
(default 5) pairs of runs, bare and status alternating which goes first. Per pair the p99 of
each run is taken; the RESULT is the median of the status p99s, and the median of the per-pair
p99 ratios status/bare and their spread are printed (as bench/sched_latency.py does), with the
median per-pair throughput ratio. About two and a half minutes on a quiet 2-core machine.

    python bench/rest.py [--rate 200] [--seconds 10] [--pairs 5] [--port-base P]
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

from bench.lib.pairing import PAIRS, alternate, result, summary  # noqa: E402
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


def _setup(home: Path, port_base: int | None) -> tuple[Instance, str, str]:
    import trustme

    inst = Instance("bench", home)
    create_instance(inst, port_base=port_base)
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0, help="one measured run")
    parser.add_argument("--pairs", type=int, default=PAIRS, help="bare/status pairs (>= 5)")
    parser.add_argument("--port-base", type=int, help="the instance's ports (else a free block)")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="rhb", dir="/tmp"))
    inst = None
    runs: dict[str, list[dict[str, float]]] = {"status": [], "bare": []}
    try:
        inst, base, secret = _setup(home, args.port_base)
        token, ca = secret.split("\n")

        def once(name: str, path: str) -> float:
            r = _measure(base + path, token, ca, args.rate, args.seconds)
            runs[name].append(r)
            print(
                f"  {name:<7} GET {path:<12} {r['n']:.0f} ok, {r['errors']:.0f} errors, "
                f"{r['throughput']:.1f} req/s, p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms",
                flush=True,
            )
            return r["p99"]

        pairs = alternate(
            lambda: once("bare", "/health"),
            lambda: once("status", "/api/status"),
            pairs=args.pairs,
            labels=("bare p99 ms", "status p99 ms"),
        )
    finally:
        if inst is not None:
            _cli("redctl", inst, "stop")
        shutil.rmtree(home, ignore_errors=True)
    s = summary(pairs)
    tput = statistics.median(
        st["throughput"] / b["throughput"]
        for st, b in zip(runs["status"], runs["bare"], strict=True)
    )
    errors = sum(r["errors"] for r in runs["status"])
    print(f"p99 status {s.ours:.2f} ms, bare {s.bare:.2f} ms (medians of {len(pairs)} runs); "
          f"ratio status/bare {s.ratio:.2f} (median of pairs; spread {s.spread[0]:.2f}-"
          f"{s.spread[1]:.2f})")  # fmt: skip
    print(f"throughput status/bare: {tput:.2f} (median of pairs; target >= 0.8); "
          f"status errors {errors:.0f}")  # fmt: skip
    ok = s.ours < TARGET_MS and tput >= 0.8 and errors == 0
    result("rest", s.ours, "ms", "<", TARGET_MS, ok=ok)
    return 0


if __name__ == "__main__":
    sys.exit(main())
