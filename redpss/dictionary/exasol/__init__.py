"""The Exasol dictionary: the same model and interface as the embedded one, through pyexasol.

``session`` holds connections (one per thread), transactions and reconnect with backoff;
``sqltext`` renders SQL text; ``ddl`` generates the objects from the model; ``core`` runs the
migrations; every other module adds the queries of one area as a mixin, and
:class:`ExasolDictionary` composes them. docs/dictionary.md describes the Exasol specifics.
"""

from __future__ import annotations
