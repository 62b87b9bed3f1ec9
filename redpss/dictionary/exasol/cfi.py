"""Where Exasol reads a claimed file itself: cfisrv, as an ``ImportSource`` of the instance.

cfisrv (``redpss/roles/cfisrv.py``) is an FTP server that requires explicit TLS (``AUTH TLS``)
on the control and the data channel. In an Exasol IMPORT a URL ``ftps://`` means *implicit*
TLS, ``ftp://`` explicit TLS when the server offers it — and all data encrypted when the server
requires it, as cfisrv does (Exasol's IMPORT/EXPORT usage notes). So the URL is
``ftp://<host>:<cfi_port>/work/``: the host the database reaches the stack at
(``db_scripts_host``, else where cfisrv listens), the folder of the claimed files.

From Exasol 8.32 the statement may carry ``PUBLIC KEY 'sha256//<base64>'`` (changelog 16273;
the database verifies file connections by default from 2025.1, changelog 25090): the SHA-256
of the DER ``SubjectPublicKeyInfo`` of cfisrv's certificate, base64 — the pin curl and pyexasol
use. Before 8.32 the database does not verify the certificate of a file connection.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from redpss.dictionary.landing import ImportSource
from redpss.errors import DictionaryError

if TYPE_CHECKING:
    from redpss.config import Config

__all__ = ["CERTIFICATE", "import_source", "public_key_pin"]

CERTIFICATE = Path("ssl") / "cfisrv.crt"
"""cfisrv's certificate, below the instance's ``etc/``."""


def public_key_pin(certificate: Path) -> str:
    """``sha256//<base64>`` of the public key of the PEM certificate at ``certificate``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    der = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256//" + base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")


def import_source(config: Config, etc_dir: Path) -> ImportSource:
    """cfisrv of this instance as the database reaches it; DictionaryError when cfisrv is not
    enabled or has no certificate yet (it makes one when it first starts)."""
    from redpss.wire import local_address

    s = config.redsys
    if not s.cfi_enabled:
        raise DictionaryError(
            f"{config.path}: [redsys] cfi_enabled is off: a loader with method = import needs "
            "cfisrv (the database reads the file from it)"
        )
    certificate = etc_dir / CERTIFICATE
    try:
        pin = public_key_pin(certificate)
    except (OSError, ValueError) as exc:
        raise DictionaryError(
            f"{certificate}: cfisrv's certificate cannot be read ({exc}); cfisrv makes one at "
            "its first start"
        ) from exc
    host = s.db_scripts_host or local_address(s.cfi_host)
    return ImportSource(
        url=f"ftp://{host}:{s.cfi_port}/work/",
        user=s.cfi_user,
        password=s.cfi_password.reveal(),
        public_key=pin,
    )
