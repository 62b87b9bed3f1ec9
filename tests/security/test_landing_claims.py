"""Claims in ``work/`` belong to the landing zone alone (promise 2 and 3; #15.3).

The FTPS user (the database) may write where exports go (``data/export/``) and nowhere else:
it can neither plant, alter nor delete a claim. Recovery takes back only claims whose name the
instance issued itself, and archives only those the ledger knows under that name.
"""

from __future__ import annotations

import ftplib
import io
import ssl
from collections.abc import Callable, Iterator

import pytest

from redpss.config import load_config
from redpss.dictionary import open_dictionary
from redpss.instance import Instance
from redpss.landing import zone_of
from redpss.landing.lifecycle import claim
from redpss.roles.base import RoleContext
from redpss.roles.cfisrv import Cfisrv
from tests.conftest import wait_for
from tests.security.landing_support import (
    MakeInstance,
    archived,
    ledger_names,
    loaded_texts,
    prepare,
    sidecar,
    start,
)


@pytest.fixture
def cfisrv(make_instance: MakeInstance) -> Iterator[tuple[Instance, Cfisrv]]:
    inst = make_instance("tst1")
    config = load_config(inst.conf_path)
    with open_dictionary("sqlite", db_dir=inst.db_dir) as dic:
        dic.init()
        role = Cfisrv(RoleContext(inst, config, dic))
        role.start()
        try:
            yield inst, role
        finally:
            role.stop()


def _login(inst: Instance, role: Cfisrv) -> ftplib.FTP_TLS:
    cfg = load_config(inst.conf_path).redsys
    tls = ssl.create_default_context(cafile=str(inst.etc / "ssl" / "cfisrv.crt"))
    ftp = ftplib.FTP_TLS(context=tls, timeout=20)
    ftp.connect(cfg.cfi_host, role.port or cfg.cfi_port)
    ftp.login(cfg.cfi_user, cfg.cfi_password.reveal())
    ftp.prot_p()
    return ftp


def test_the_ftps_user_cannot_plant_alter_or_delete_a_claim(
    cfisrv: tuple[Instance, Cfisrv],
) -> None:
    inst, role = cfisrv
    zone = zone_of(inst, load_config(inst.conf_path))
    (zone.input / "note_1.csv").write_text("mine\n")
    item = claim(zone, zone.input / "note_1.csv")
    assert item is not None
    held = item.path.name
    with _login(inst, role) as ftp:
        assert "export" in ftp.nlst()
        # what the database's EXPORT does: its own folder takes files, folders, renames
        ftp.storbinary("STOR export/out.csv", io.BytesIO(b"a,b\n"))
        ftp.mkd("export/day")
        ftp.rename("export/out.csv", "export/day/out.csv")
        assert (zone.data / "export" / "day" / "out.csv").read_bytes() == b"a,b\n"
        attempts: list[Callable[[], object]] = [
            lambda: ftp.storbinary(f"STOR work/{held}", io.BytesIO(b"altered\n")),
            lambda: ftp.storbinary(f"APPE work/{held}", io.BytesIO(b"more\n")),
            lambda: ftp.delete(f"work/{held}"),
            lambda: ftp.rename(f"work/{held}", "work/x.csv"),
            lambda: ftp.rename(f"work/{held}", "export/stolen.csv"),
            lambda: ftp.storbinary(
                "STOR work/L0123456789abcdef01234567.note_2.csv", io.BytesIO(b"planted\n")
            ),
            lambda: ftp.rename("export/day/out.csv", "work/L0123456789abcdef01234567.x.csv"),
            lambda: ftp.rename("export/day/out.csv", "input/note_3.csv"),
            lambda: ftp.mkd("work/sub"),
            lambda: ftp.rmd("export"),
            lambda: ftp.rename("export", "work/export"),
        ]
        for attempt in attempts:
            with pytest.raises(ftplib.error_perm, match=r"^550"):
                attempt()
    assert [p.name for p in zone.work.iterdir()] == [held]
    assert item.path.read_text() == "mine\n"
    assert not any(zone.input.iterdir())


def test_recovery_takes_back_only_the_claims_it_issued(make_instance: MakeInstance) -> None:
    inst = prepare(make_instance)
    zone = zone_of(inst, load_config(inst.conf_path))
    # a claim the instance made, then died before loading it
    (zone.input / "note_mine.csv").write_text("mine\n")
    mine = claim(zone, zone.input / "note_mine.csv")
    assert mine is not None
    # files that someone else put into work/ under claim-shaped names
    (zone.work / "L0123456789abcdef01234567.note_planted.csv").write_text("planted\n")
    borrowed = f"{mine.claim_id}.note_borrowed.csv"  # a real claim id, another name
    (zone.work / borrowed).write_text("borrowed\n")
    start(inst)
    wait_for(lambda: archived(inst, "note_mine.csv"), timeout=30, what="the own claim loaded")
    for name in ("note_planted.csv", "note_borrowed.csv"):
        assert "did not issue" in sidecar(inst, name)["reason"]
    assert loaded_texts(inst) == ["mine"]
    assert ledger_names(inst) == ["note_mine.csv"]
    assert not any(zone.work.iterdir()) and not any(zone.input.iterdir())
