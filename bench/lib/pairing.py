"""What makes a bench hold still on a shared, noisy host (issue 20), in one place.

- :func:`grow`: the work of one measured run is grown (doubled) until a run takes at least
  :data:`MIN_SECONDS` — a run of 0.16 s moved its ratio by a quarter from one try to the next;
- :func:`alternate`: bare and ours are measured in turn, :data:`PAIRS` pairs, the one that goes
  first alternating from pair to pair (a host getting busier hurts both sides alike);
- :func:`summary`: the median of each side and of the per-pair ratios, and their spread;
- :func:`result`: the one ``RESULT`` line every bench ends with, with the host's load.

A bench imports it as ``from bench.lib.pairing import ...`` after putting the repository root
on ``sys.path`` (bench scripts run as ``.venv/bin/python bench/NAME.py``). The helpers live in
``bench/lib/``: ``make bench`` runs every ``bench/*.py`` as a bench.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["MIN_SECONDS", "PAIRS", "Summary", "alternate", "grow", "result", "summary"]

MIN_SECONDS = 1.0
PAIRS = 5


def grow(
    seconds_of: Callable[[int], float], start: int, *, min_seconds: float = MIN_SECONDS
) -> int:
    """The first ``n = start * 2**k`` whose run takes ``min_seconds`` or more (``seconds_of(n)``
    runs the work of size ``n`` once and returns its seconds)."""
    n = start
    while (took := seconds_of(n)) < min_seconds:
        n *= 2 if took < min_seconds / 4 else 1 + int(min_seconds / max(took, 1e-3))
    return n


def alternate(
    bare: Callable[[], float],
    ours: Callable[[], float],
    *,
    pairs: int = PAIRS,
    labels: tuple[str, str] = ("bare", "ours"),
) -> list[tuple[float, float]]:
    """``pairs`` (bare, ours) measurements, bare first in even pairs and ours first in odd ones;
    each pair is printed as it comes (with ``labels``)."""
    found = []
    for i in range(pairs):
        if i % 2 == 0:
            b = bare()
            o = ours()
        else:
            o = ours()
            b = bare()
        print(f"  pair {i + 1}: {labels[0]} {b:.4g}, {labels[1]} {o:.4g}", flush=True)
        found.append((b, o))
    return found


@dataclass(frozen=True)
class Summary:
    """Medians of a list of pairs."""

    bare: float
    ours: float
    ratio: float  # median of ours / bare per pair
    spread: tuple[float, float]  # lowest and highest per-pair ratio


def summary(pairs: Sequence[tuple[float, float]]) -> Summary:
    """The medians of the pairs and of their ratios (ours / bare)."""
    ratios = [o / b for b, o in pairs if b]
    return Summary(
        statistics.median(b for b, _ in pairs),
        statistics.median(o for _, o in pairs),
        statistics.median(ratios) if ratios else float("nan"),
        (min(ratios), max(ratios)) if ratios else (float("nan"), float("nan")),
    )


def result(
    name: str, value: float, unit: str, op: str, target: float, *, ok: bool | None = None
) -> str:
    """``RESULT <name> value=<n> unit=<u> target=<op><n> ok=<yes|no>``; ``ok`` defaults to the
    comparison ``value <op> target``. The load of the host is printed on the line before."""
    checks = {
        "<": value < target,
        "<=": value <= target,
        ">": value > target,
        ">=": value >= target,
    }
    passed = checks[op] if ok is None else ok
    print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    verdict = "yes" if passed else "no"
    line = f"RESULT {name} value={value:.4g} unit={unit} target={op}{target:g} ok={verdict}"
    print(line, flush=True)
    return line
