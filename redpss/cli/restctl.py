"""``restctl``: starts and stops the GUnicorn application server of the REST API.

``restctl {start | stop | status | restart}`` act on the ``rest`` role of the running instance
through its supervisord (:mod:`redpss.rest.control`); ``restctl token add|list|revoke`` manage
the bearer tokens of the API (:mod:`redpss.rest.tokens`). Exit codes are redctl's: 0 done or
running, 1 failed or degraded, 2 usage error, 3 stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict

from redpss import audit
from redpss.certs import fingerprint
from redpss.cli.common import (
    ArgumentParser,
    add_instance_option,
    emit,
    entry,
    fail,
    guarded,
    setup_cli_logging,
)
from redpss.instance import Instance, resolve_instance
from redpss.rest import control as rest
from redpss.rest import tokens_path
from redpss.rest.tls import make_certificate
from redpss.rest.tokens import ROLES, TokenStore

__all__ = ["main"]

EPILOG = """\
certificate (HTTPS only; the guide: $REDENV_HOME/etc/ssl/REST/{cert,key}.pem):
  restctl cert [--replace]    a self-signed one (redsysctl create makes it too)

tokens (for the API's clients; a reader may read, an operator may also act):
  restctl token add NAME --role reader|operator   prints the token once
  restctl token list
  restctl token revoke NAME

exit codes:
  0  done (status: the API is running)
  1  failed (status: the API is down or without heartbeat while the instance runs)
  2  usage error
  3  status: the API is stopped (or not enabled)
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of restctl."""
    parser = ArgumentParser(
        prog="restctl",
        usage="restctl {start | stop | status | restart}",
        description="Control the REST API server (gunicorn) of an instance.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_instance_option(parser)
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    sub = parser.add_subparsers(dest="command", metavar="{start,stop,status,restart,cert,token}")
    for name, text in (
        ("start", "start the API server"),
        ("stop", "stop it gracefully"),
        ("status", "show its status"),
        ("restart", "stop and start it"),
    ):
        sub.add_parser(name, help=text, description=text)
    cert = sub.add_parser(
        "cert",
        help="make a self-signed certificate for the API (etc/ssl/REST) if it has none",
        description="Make a self-signed certificate and key (RSA 2048, one year) in "
        "$REDENV_HOME/etc/ssl/REST for localhost, the host name and gu_host. To use a real "
        "one, put it (with its chain) into cert.pem and its key into key.pem (mode 0600), "
        "then restctl restart (docs/rest.md).",
    )
    cert.add_argument(
        "--replace", action="store_true", help="make a new pair; the old one is kept as *.old"
    )
    token = sub.add_parser("token", help="manage the API's bearer tokens")
    tsub = token.add_subparsers(dest="action", metavar="{add,list,revoke}", required=True)
    add = tsub.add_parser("add", help="add a token and print it (once)")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, required=True)
    tsub.add_parser("list", help="list the tokens (names and roles, never the tokens)")
    rev = tsub.add_parser("revoke", help="remove a token")
    rev.add_argument("name")
    return parser


def _status(inst: Instance, args: argparse.Namespace) -> int:
    config = inst.load_config()
    code, row = rest.rest_status(inst, config)
    if args.json:
        print(json.dumps({"exit_code": code, "role": asdict(row) if row else None}, indent=2))
    elif row is None:
        why = "not enabled (rest_enabled = false)" if not config.rest.rest_enabled else "STOPPED"
        print(f"rest API of {inst.name}: {why}")
    else:
        where = f"https://{config.rest.gu_host}:{config.rest.gu_port}"
        print(f"rest API of {inst.name}: {row.state} {where} pid {row.pid} "
              f"alert {row.alert}{' ' + row.reason if row.reason else ''}")  # fmt: skip
    return code


def _control(inst: Instance, args: argparse.Namespace) -> int:
    config = inst.load_config()
    doc: dict[str, object] = {"instance": inst.name, "command": args.command}
    if args.command in ("stop", "restart"):
        stopped = rest.stop(inst, config)
        doc["stopped"] = stopped
        if args.command == "stop":
            text = f"rest API of {inst.name}: {'stopped' if stopped else 'was not running'}"
            emit(args.json, doc, text)
            return 0
    started = rest.start(inst, config)
    where = f"https://{config.rest.gu_host}:{config.rest.gu_port}"
    doc.update(started=started, url=where)
    text = f"rest API of {inst.name}: {'started' if started else 'already running'} at {where}"
    emit(args.json, doc, text)
    return 0


def _cert(inst: Instance, args: argparse.Namespace) -> int:
    config = inst.require().load_config()
    cert, made = make_certificate(inst, config.rest.gu_host, replace=args.replace)
    doc = {"certificate": str(cert), "made": made, "sha256": fingerprint(cert)}
    text = (
        f"self-signed certificate made: {cert} (SHA-256 {doc['sha256']}); clients must trust "
        "it, or replace it with a real one (docs/rest.md); restctl restart to use it"
        if made
        else f"{cert} exists (SHA-256 {doc['sha256']}); --replace makes a new one"
    )
    emit(args.json, doc, text)
    return 0


def _token(inst: Instance, args: argparse.Namespace) -> int:
    store = TokenStore(tokens_path(inst.require()))
    if args.action == "add":
        token = store.add(args.name, args.role)
        emit(args.json, {"name": args.name, "role": args.role, "token": token}, token)
        print(f"token {args.name} ({args.role}) added; it is shown only now", file=sys.stderr)
        return 0
    if args.action == "revoke":
        if not store.revoke(args.name):
            return fail(f"no token named {args.name!r}")
        emit(args.json, {"name": args.name, "revoked": True}, f"token {args.name} revoked")
        return 0
    rows = [asdict(t) for t in store.list()]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for t in rows:
            print(f"{t['name']:<24} {t['role']:<9} {t['created']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``restctl``; returns the exit code."""
    return entry(argv, _main)


def _main(raw: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(raw)
    if args.command is None:
        if args.json:
            return fail("a command is needed (restctl -h lists them)", code=2)
        parser.print_usage(sys.stderr)
        return 2

    def act(inst: Instance) -> int:
        if args.command == "token":
            return _token(inst, args)
        if args.command == "cert":
            return _cert(inst, args)
        if args.command == "status":
            return _status(inst, args)
        return _control(inst, args)

    def run() -> int:
        inst = resolve_instance(args.instance)
        setup_cli_logging(inst, debug=False)
        name = args.command if args.command != "token" else f"token {args.action}"
        changes = name not in ("status", "token list") and inst.log_dir.is_dir()
        return audit.audited(
            inst.log_dir if changes else None,
            tool="restctl", command=name, args=raw, action=lambda: act(inst),
        )  # fmt: skip

    return guarded(run)


if __name__ == "__main__":
    sys.exit(main())
