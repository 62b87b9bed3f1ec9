"""The Exasol dictionary: the same model and interface as the embedded one, through pyexasol.

``session`` holds connections (one per thread), transactions and reconnect with backoff;
``sqltext`` renders SQL text; ``ddl`` generates the objects from the model; ``core`` runs the
migrations; every other module adds the queries of one area as a mixin, and
:class:`ExasolDictionary` composes them. docs/dictionary.md describes the Exasol specifics.
"""

from __future__ import annotations

from redpss.dictionary.exasol.export import ExasolExport
from redpss.dictionary.exasol.jobs import ExasolJobs
from redpss.dictionary.exasol.jobstatus import ExasolJobStatus
from redpss.dictionary.exasol.landing import ExasolLanding
from redpss.dictionary.exasol.purge import ExasolPurge
from redpss.dictionary.exasol.status import ExasolStatus

__all__ = ["ExasolDictionary"]


class ExasolDictionary(
    ExasolStatus, ExasolJobs, ExasolJobStatus, ExasolLanding, ExasolExport, ExasolPurge
):
    """The dictionary on an Exasol database (see the module doc)."""
