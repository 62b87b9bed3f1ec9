"""cfisrv without a server: certificate, permissions, the visible tree, the password check."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from cryptography import x509

from redpss.config import load_config
from redpss.dictionary import open_dictionary
from redpss.errors import ConfigError, RoleError
from redpss.instance import Instance, create_instance
from redpss.roles import enabled_roles
from redpss.roles.base import RoleContext
from redpss.roles.cfisrv import CfiAuthorizer, CfiFilesystem, Cfisrv, ensure_certificate
from redpss.secret import Secret


def test_certificate_made_once_with_a_private_key(tmp_path: Path) -> None:
    ssl_dir = tmp_path / "ssl"
    cert, key, made = ensure_certificate(ssl_dir, "10.1.2.3")
    assert made and key.stat().st_mode & 0o777 == 0o600
    parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    alt = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = {str(ip) for ip in alt.get_values_for_type(x509.IPAddress)}
    assert {"127.0.0.1", "10.1.2.3"} <= ips
    assert "localhost" in alt.get_values_for_type(x509.DNSName)
    before = cert.read_bytes()
    assert ensure_certificate(ssl_dir, "10.1.2.3") == (cert, key, False)
    assert cert.read_bytes() == before


def test_half_a_pair_is_refused(tmp_path: Path) -> None:
    _cert, key, _ = ensure_certificate(tmp_path, "127.0.0.1")
    key.unlink()
    with pytest.raises(RoleError, match=r"cfisrv\.crt exists but .*cfisrv\.key does not"):
        ensure_certificate(tmp_path, "127.0.0.1")
    assert not key.exists()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    for sub in ("input", "work", "error", "archive", "export", "db"):
        (data / sub).mkdir(parents=True)
    (tmp_path / "etc").mkdir()
    return data


def _authorizer(data: Path) -> CfiAuthorizer:
    auth = CfiAuthorizer(data / "export")
    auth.add_user("u", "pw", str(data), perm="elr")
    auth.override_perm("u", str(data / "export"), perm="elradfmw", recursive=True)
    return auth


def test_write_permissions_only_strictly_below_export(tree: Path) -> None:
    auth = _authorizer(tree)
    (tree / "export" / "to_work").symlink_to(tree / "work", target_is_directory=True)
    for perm in "wdfm":
        assert auth.has_perm("u", perm, str(tree / "export" / "x.csv"))
        assert auth.has_perm("u", perm, str(tree / "export" / "sub" / "x.csv"))
        assert not auth.has_perm("u", perm, str(tree / "export"))  # not the folder itself
        assert not auth.has_perm("u", perm, str(tree / "input" / "x.csv"))
        assert not auth.has_perm("u", perm, str(tree / "work" / "L0.x.csv"))  # the claims
        assert not auth.has_perm("u", perm, str(tree / "export" / ".." / "work" / "x.csv"))
        assert not auth.has_perm("u", perm, str(tree / "export" / "to_work" / "x.csv"))
    for perm in "elr":
        assert auth.has_perm("u", perm, str(tree / "input" / "x.csv"))
        assert auth.has_perm("u", perm, str(tree / "work"))


def test_password_compared_exactly(tree: Path) -> None:
    from pyftpdlib.authorizers import AuthenticationFailed

    auth = _authorizer(tree)
    auth.validate_authentication("u", "pw", None)
    for user, password in (("u", "pw "), ("u", "PW"), ("u", ""), ("anonymous", ""), ("x", "pw")):
        with pytest.raises(AuthenticationFailed):
            auth.validate_authentication(user, password, None)


def test_only_the_landing_folders_are_visible(tree: Path) -> None:
    fs = CfiFilesystem(str(tree), None)
    (tree / "input" / "out").symlink_to(tree.parent / "etc", target_is_directory=True)
    (tree / "input" / "db").symlink_to(tree / "db", target_is_directory=True)
    assert sorted(fs.listdir(str(tree))) == ["archive", "error", "export", "input", "work"]
    assert fs.validpath(str(tree))
    assert fs.validpath(str(tree / "input" / "a.csv"))
    assert fs.validpath(str(tree / "work" / "new" / "b.csv"))
    for bad in (
        tree / "db",
        tree / "db" / "REDSYS.db",
        tree / "input" / "out" / "secret",
        tree / "input" / "db" / "REDSYS.db",
        tree.parent / "etc",
        tree.parent / "database",
    ):
        assert not fs.validpath(str(bad)), bad
    # ".." never climbs above the root
    assert fs.ftp2fs("/../../etc/passwd") == os.path.join(str(tree), "etc", "passwd")
    assert fs.fs2ftp(str(tree.parent / "etc")) == "/"


def test_empty_password_is_refused_naming_the_key(tmp_path: Path) -> None:
    inst = Instance("tst1", tmp_path)
    create_instance(inst)
    config = load_config(inst.conf_path)
    assert config.redsys.cfi_password  # redsysctl create wrote etc/cfi_password
    empty = dataclasses.replace(
        config, redsys=dataclasses.replace(config.redsys, cfi_password=Secret(""))
    )
    with open_dictionary("sqlite", db_dir=inst.db_dir) as dic:
        role = Cfisrv(RoleContext(inst, empty, dic))
        with pytest.raises(RoleError, match=r"\[redsys\] cfi_password is empty"):
            role.start()
        role.stop()
        role.stop()
    assert not (inst.etc / "ssl" / "cfisrv.key").exists()


def test_cfisrv_runs_only_when_enabled(tmp_path: Path) -> None:
    inst = Instance("tst1", tmp_path)
    create_instance(inst)
    config = load_config(inst.conf_path)
    assert "cfisrv" in enabled_roles(config)
    off = dataclasses.replace(config, redsys=dataclasses.replace(config.redsys, cfi_enabled=False))
    assert not {"cfisrv", "json2csv", "parq2csv"} & set(enabled_roles(off))


def test_password_comes_from_the_secret_file_create_writes(tmp_path: Path) -> None:
    inst = Instance("tst1", tmp_path)
    create_instance(inst)
    written = (inst.etc / "cfi_password").read_text().strip()
    assert len(written) >= 24 and (inst.etc / "cfi_password").stat().st_mode & 0o777 == 0o600
    assert load_config(inst.conf_path).redsys.cfi_password.reveal() == written
    text = inst.conf_path.read_text()
    inst.conf_path.write_text(
        text.replace("cfi_password = file:cfi_password", "cfi_password = lit")
    )
    assert load_config(inst.conf_path).redsys.cfi_password.reveal() == "lit"
    inst.conf_path.write_text(text)
    (inst.etc / "cfi_password").unlink()
    with pytest.raises(ConfigError, match="cfi_password: cannot read secret file"):
        load_config(inst.conf_path)
