"""Self-signed TLS certificates for the servers of an instance that have none yet: cfisrv's FTPS
(``etc/ssl/cfisrv.crt``) and the REST API's HTTPS (``etc/ssl/REST/cert.pem``).

RSA 2048, valid one year, for the names a client on this host or the network may use:
``localhost``, the host name, ``127.0.0.1``, ``::1`` and the address the server binds to. The
key is written with mode 0600, never over an existing file. A self-signed certificate lets a
server start; for production replace the pair with one your clients trust (docs/rest.md,
docs/landing.md).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from pathlib import Path

from redpss.errors import RoleError

__all__ = ["ensure_pair", "fingerprint"]

VALID_DAYS = 365


def _names(host: str) -> tuple[list[str], list[str]]:
    dns = ["localhost", socket.gethostname()]
    ips = ["127.0.0.1", "::1"]
    try:
        ipaddress.ip_address(host)
        if host not in ("0.0.0.0", "::"):  # binding to every address names none of them
            ips.append(host)
    except ValueError:
        dns.append(host)
    return list(dict.fromkeys(d for d in dns if d)), list(dict.fromkeys(ips))


def ensure_pair(
    cert_path: Path, key_path: Path, host: str, *, what: str
) -> tuple[Path, Path, bool]:
    """``(certificate, key, made)``: the pair, made self-signed when both are missing.

    One of the two without the other is a :class:`RoleError` naming both (nothing is
    overwritten); ``what`` names the server in it.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    have = cert_path.exists(), key_path.exists()
    if all(have):
        return cert_path, key_path, False
    if any(have):
        present, absent = (cert_path, key_path) if have[0] else (key_path, cert_path)
        raise RoleError(f"{what}: {present} exists but {absent} does not; provide both")
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    dns, ips = _names(host)
    common_name = socket.gethostname() or "localhost"
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    alt = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_bytes)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path, True


def fingerprint(cert_path: Path) -> str:
    """The SHA-256 fingerprint of a PEM certificate (``AB:CD:…``), as browsers show it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()
