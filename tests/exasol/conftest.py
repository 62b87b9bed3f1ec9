"""The exasol tier: real Exasol databases from ``exasol/docker-db`` through testcontainers.

Run it with ``make test-exasol`` on a machine whose Docker engine can pull the images and run a
privileged container with about 4 GiB of memory to spare. ``REDPSS_EXASOL_IMAGES`` lists the
images to run every test against, one after the other (spaces or commas between them), e.g. an
Exasol 7.1 and a current one::

    REDPSS_EXASOL_IMAGES="exasol/docker-db:7.1.30 exasol/docker-db:2025.1.8" make test-exasol

(default: ``REDPSS_EXASOL_IMAGE``, else ``exasol/docker-db:latest``). A test **skips only when
no Docker engine answers or an image cannot be pulled** (no registry, as on this project's CI
machines), and says which; any other trouble of the fixtures — the container not starting, the
database not answering SQL in time — fails.

Each database is started once. As SYS (the DBA) the fixture creates the dictionary user
``REDPSS_DICT`` with exactly the system privileges docs/dictionary.md tells a DBA to grant
(``ddl.DICTIONARY_USER_PRIVILEGES``): the backend and the test instances log in as that user,
never as SYS; only the tests' own set-up and checks use SYS. The SQL port is published on the
host; the database reaches the roles of the test instance (dbls, sendmail, jexec, cfisrv) at
the gateway address of Docker's bridge network, so those roles bind to all interfaces here.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from redpss.dictionary import Dictionary, open_dictionary
from redpss.dictionary.exasol.ddl import dictionary_user_grants
from redpss.dictionary.exasol.session import ExaSettings
from redpss.instance import Instance

IMAGES = tuple(
    i
    for i in re.split(
        r"[\s,]+",
        os.environ.get("REDPSS_EXASOL_IMAGES")
        or os.environ.get("REDPSS_EXASOL_IMAGE")
        or "exasol/docker-db:latest",
    )
    if i
)
SQL_PORT = 8563
PASSWORD = "exasol"  # the image's default password of SYS
DICT_USER = "REDPSS_DICT"
DICT_PASSWORD = "Redpss_dict_123"
STARTUP_TIMEOUT = 900.0  # a cold docker-db needs a few minutes
TEST_SCHEMAS = ("REDSYS", "DWH", "STAGE")

pytestmark = pytest.mark.timeout(1800)


@dataclass(frozen=True)
class ExasolDb:
    """A running database: where the host reaches it, and where it reaches the host."""

    host: str
    port: int
    gateway: str
    image: str = ""

    @property
    def dsn(self) -> str:
        return f"{self.host}:{self.port}"

    def settings(self) -> ExaSettings:
        """How the dictionary user (no DBA) logs in: what the backend and instances use."""
        return ExaSettings(
            dsn=self.dsn, user=DICT_USER, password=DICT_PASSWORD, certificate="nocertcheck"
        )

    def sys_settings(self) -> ExaSettings:
        """How SYS, the DBA, logs in (the tests' own set-up and checks)."""
        return ExaSettings(dsn=self.dsn, user="SYS", password=PASSWORD, certificate="nocertcheck")

    def dictionary(self, settings: ExaSettings | None = None) -> Dictionary:
        """The Exasol dictionary backend on this database (as the dictionary user)."""
        return open_dictionary(
            "exasol", db_dir=Path("/nonexistent"), exasol=settings or self.settings()
        )

    def connect(self, *, as_dictionary_user: bool = False) -> Any:
        """A plain pyexasol connection (autocommit) for the tests' own checks: as SYS, or as
        the dictionary user (what its SQL jobs may do)."""
        import pyexasol

        settings = self.settings() if as_dictionary_user else self.sys_settings()
        return pyexasol.connect(**(settings.connect_kwargs() | {"autocommit": True}))


def _unavailable(image: str = IMAGES[0]) -> str | None:
    """None when the image is present or can be pulled, else why not.

    Only the known causes are a reason to skip: no engine (its socket missing, or nothing
    answering at DOCKER_HOST) and an image that the engine cannot pull. Anything else (a broken
    engine, a bad DOCKER_HOST, a bug here) is an error of the test run."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
        return (
            f"no Docker engine reachable: its socket {host.removeprefix('unix://')} does not exist"
        )
    client = docker.from_env(version="1.41")  # no API call before ping()
    try:
        try:
            client.ping()
        except requests.exceptions.ConnectionError as exc:
            return f"no Docker engine reachable at {_where()}: {exc}"
        try:
            client.images.get(image)
            return None
        except docker.errors.ImageNotFound:
            pass
        try:
            client.images.pull(image)
        except docker.errors.APIError as exc:
            return f"image {image} cannot be pulled: {exc.explanation or exc}"
        return None
    finally:
        client.close()


def _where() -> str:
    return os.environ.get("DOCKER_HOST", "the default socket")


def _wait_until_sql_answers(db: ExasolDb) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            conn = db.connect()
        except Exception as exc:  # not up yet: keep the reason for the failure message
            last = exc
            time.sleep(0.4)  # polling while the database boots
            continue
        try:
            if conn.execute("SELECT 1 FROM DUAL").fetchval() == 1:
                return
        finally:
            conn.close()
    pytest.fail(f"Exasol did not accept SQL within {STARTUP_TIMEOUT} s: {last}")


def _create_dictionary_user(db: ExasolDb) -> None:
    conn = db.connect()
    try:
        conn.execute(f"DROP USER IF EXISTS {DICT_USER} CASCADE")
        conn.execute(f'CREATE USER {DICT_USER} IDENTIFIED BY "{DICT_PASSWORD}"')
        for grant in dictionary_user_grants(DICT_USER):
            conn.execute(grant)
    finally:
        conn.close()


@pytest.fixture(scope="session", params=IMAGES)
def exasol(request: pytest.FixtureRequest) -> Iterator[ExasolDb]:
    """A running exasol/docker-db per image of ``REDPSS_EXASOL_IMAGES`` (one after the
    other), with the dictionary user created (module doc)."""
    image = str(request.param)
    reason = _unavailable(image)
    if reason is not None:
        pytest.skip(reason)
    from testcontainers.core.container import DockerContainer

    container = (
        DockerContainer(image)
        .with_kwargs(privileged=True, shm_size="1g")
        .with_exposed_ports(SQL_PORT)
    )
    with container:
        client = container.get_docker_client().client
        gateway = client.networks.get("bridge").attrs["IPAM"]["Config"][0]["Gateway"]
        db = ExasolDb(
            container.get_container_host_ip(),
            int(container.get_exposed_port(SQL_PORT)),
            gateway,
            image,
        )
        _wait_until_sql_answers(db)
        _create_dictionary_user(db)
        yield db


@pytest.fixture
def clean_db(exasol: ExasolDb) -> Iterator[ExasolDb]:
    """The database without the schemas the tests create (one instance serves one database)."""

    def drop() -> None:
        conn = exasol.connect()
        try:
            for schema in TEST_SCHEMAS:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.execute("DROP USER IF EXISTS REDPSS_READER CASCADE")
        finally:
            conn.close()

    drop()
    yield exasol
    drop()


@pytest.fixture
def exa_instance(clean_db: ExasolDb, make_instance: Callable[..., Instance]) -> Instance:
    """An instance whose dictionary is the test database; its services reachable from it."""
    everywhere = "0.0.0.0"
    return make_instance(
        "exa1",
        dictionary="exasol",
        exa_connection=clean_db.dsn,
        exa_username=DICT_USER,
        exa_password=DICT_PASSWORD,
        exa_certificate="nocertcheck",
        exa_reconnect_timeout="60",
        dbls_host=everywhere,
        sendmail_host=everywhere,
        jexec_host=everywhere,
        sendfile_host=everywhere,
        cfi_host=everywhere,
        db_scripts_host=clean_db.gateway,
        sched_file_quiet_period="0.2",
        landing_poll_interval="0.1",
    )
