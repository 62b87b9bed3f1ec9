"""The REST API of an instance: an ASGI app (FastAPI) served by gunicorn over HTTPS.

One module per concern: :mod:`~redpss.rest.app` (routes; every action calls
:mod:`redpss.control` or :mod:`redpss.sched.control`, never its own copy),
:mod:`~redpss.rest.tokens` (bearer tokens, stored hashed), :mod:`~redpss.rest.audit` (the audit
log), :mod:`~redpss.rest.views` (read-only views of the landing zone and the mail spool),
:mod:`~redpss.rest.metrics` (Prometheus text) and :mod:`~redpss.rest.ui` (the status page).
The role that runs gunicorn is :mod:`redpss.roles.rest`; ``docs/rest.md`` describes it all.
"""

from __future__ import annotations

from pathlib import Path

from redpss.audit import AUDIT_FILE
from redpss.instance import Instance

__all__ = ["CERT_FILE", "KEY_FILE", "audit_path", "rest_log_dir", "ssl_dir", "tokens_path"]

# the guide: "Certificate and Private Key must exist in $REDENV_HOME/etc/ssl/REST"
CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"


def ssl_dir(inst: Instance) -> Path:
    """``$REDENV_HOME/etc/ssl/REST``: ``cert.pem`` (with its chain) and ``key.pem``."""
    return inst.etc / "ssl" / "REST"


def rest_log_dir(inst: Instance) -> Path:
    """``$REDENV_HOME/log/REST``: the access log, one file per UTC day (``access-<date>.log``)."""
    return inst.log_dir / "REST"


def tokens_path(inst: Instance) -> Path:
    """``$REDENV_HOME/etc/rest_tokens.json`` (mode 0600): the hashed bearer tokens."""
    return inst.etc / "rest_tokens.json"


def audit_path(inst: Instance) -> Path:
    """``$REDENV_HOME/log/audit.log``: one JSON line per action (:mod:`redpss.audit`)."""
    return inst.log_dir / AUDIT_FILE
