"""PARQ2CSV: converts arriving Parquet files in ``data/input`` to CSV (runs only with cfisrv).

Same machinery as :mod:`redpss.roles.json2csv`; suffixes and retention from ``parq2csv_*``.
"""

from __future__ import annotations

from redpss.roles.json2csv import Converter

__all__ = ["Parq2csv"]


class Parq2csv(Converter):
    """Parquet → CSV, one row-group slice at a time."""

    name = "parq2csv"
    kind = "PARQUET"

    def suffixes(self) -> tuple[str, str, float]:
        """``parq2csv_parq_suffix``, ``parq2csv_csv_suffix``, ``parq2csv_retention``."""
        cfg = self.ctx.config.redsys
        return cfg.parq2csv_parq_suffix, cfg.parq2csv_csv_suffix, cfg.parq2csv_retention
