"""Container mode: idle memory of a whole instance (target < 400 MB); see bench/compose.py.

python bench/compose_memory.py
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "bench_compose", Path(__file__).with_name("compose.py")
)
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bench  # its dataclass looks itself up there
_spec.loader.exec_module(bench)


def main() -> int:
    f = bench.measure()
    bench.report(f)
    target = bench.MEMORY_TARGET_MB
    ok = "yes" if f.memory < target else "no"
    print(f"RESULT compose_idle_memory value={f.memory:.0f} unit=MB target=<{target:.0f} ok={ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
