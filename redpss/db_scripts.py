"""The database-side scripts of one instance: written out for a DBA, or installed.

``redctl db scripts`` and ``redctl db init --with-scripts`` call the functions here; the SQL
itself comes from :mod:`redpss.dictionary.scripts`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from redpss.config import Config
from redpss.dictionary import open_instance_dictionary
from redpss.dictionary.scripts import db_script_statements, script_file
from redpss.instance import Instance

__all__ = ["install_db_scripts", "render_db_scripts", "write_db_scripts"]

log = logging.getLogger(__name__)


def render_db_scripts(
    inst: Instance, config: Config, *, grant_to: Sequence[str] = (), show_secret: bool = False
) -> str:
    """The statements as one SQL file; the secret masked unless ``show_secret``."""
    statements = db_script_statements(
        config, inst.name, grant_to=grant_to, mask_secret=not show_secret
    )
    return script_file(statements)


def write_db_scripts(path: Path, text: str) -> None:
    """Write the SQL file readable by its owner only (it may hold the instance secret)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    path.chmod(0o600)  # an existing file keeps its mode on open: narrow it too


def install_db_scripts(inst: Instance, config: Config, *, grant_to: Sequence[str] = ()) -> int:
    """Run the statements in the instance's dictionary database; return how many ran.

    The embedded dictionary cannot hold scripts: it raises DictionaryError.
    """
    statements = db_script_statements(config, inst.name, grant_to=grant_to)
    with open_instance_dictionary(inst, config) as dictionary:
        count = dictionary.install_scripts(statements)
    log.info("instance=%s database-side scripts installed (%d statements)", inst.name, count)
    return count
