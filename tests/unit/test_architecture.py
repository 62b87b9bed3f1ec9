"""The import graph of redpss against docs/architecture.md: every part has a row, no import the
rules forbid exists (at the top, inside a function, or under TYPE_CHECKING)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "redpss"
DOC = ROOT / "docs" / "architecture.md"
EVERY = "*"


@dataclass(frozen=True)
class Rule:
    """One row of the table "Imports that must never exist"."""

    parts: frozenset[str]
    never: frozenset[str]
    but: frozenset[str]
    why: str

    def forbids(self, source: str, target: str) -> bool:
        applies = EVERY in self.parts or source in self.parts
        banned = EVERY in self.never or target in self.never
        return applies and banned and target not in self.but


@dataclass(frozen=True)
class Import:
    """An import of one part by another: where it stands."""

    source: str
    target: str
    file: Path
    line: int

    def __str__(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line} imports {self.target}"


def _names(cell: str) -> frozenset[str]:
    return frozenset(re.findall(r"`([^`]+)`", cell))


def _table(heading: str) -> list[list[str]]:
    """The rows (cells) of the first table under ``## <heading>`` in docs/architecture.md."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


def rules() -> list[Rule]:
    found = []
    for parts, never, but, why in _table("Imports that must never exist"):
        found.append(Rule(_names(parts), _names(never), _names(but), why))
    return found


def documented_parts() -> list[str]:
    return [next(iter(_names(row[0]))) for row in _table("The parts, bottom up")]


def actual_parts() -> set[str]:
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    return modules | packages | {"redpss"}


def part_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "redpss"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports() -> list[Import]:
    """Every import of another part of redpss, wherever it stands in a module."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*up, base] if base else up)
                targets = [base]
                if node.module is None or base == "redpss":  # from redpss import wire
                    targets = [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                if target == "redpss" or target.startswith("redpss."):
                    source, goal = part_of(module), part_of(target)
                    if goal not in actual_parts():  # from redpss import __version__
                        goal = "redpss"
                    if source != goal:
                        found.append(Import(source, goal, path, node.lineno))
    return found


def test_the_doc_has_rules_and_they_name_real_parts() -> None:
    table = rules()
    assert len(table) >= 10
    named = set().union(*(r.parts | r.never | r.but for r in table)) - {EVERY}
    assert named <= actual_parts(), f"rules name parts that do not exist: {named - actual_parts()}"


def test_every_part_of_the_package_has_a_row_in_the_doc() -> None:
    documented = documented_parts()
    assert len(documented) == len(set(documented)), "a part has two rows"
    missing = actual_parts() - set(documented)
    assert not missing, (
        f"redpss/{sorted(missing)[0]} is a new part: add a row to the table 'The parts, bottom up' "
        "of docs/architecture.md (what it owns), and to the rules what it must never import"
    )
    assert not set(documented) - actual_parts(), "the doc lists parts that are gone"


def test_no_import_breaks_a_rule() -> None:
    broken = [
        f"{imp}: {rule.why}"
        for imp in imports()
        for rule in rules()
        if rule.forbids(imp.source, imp.target)
    ]
    assert not broken, "imports docs/architecture.md forbids:\n" + "\n".join(broken)


def test_the_scan_sees_lazy_and_type_checking_imports() -> None:
    """The rules would be empty words if the scan missed imports inside functions or under
    TYPE_CHECKING: both kinds exist in the package, and the scan finds them."""
    found = {(i.file.relative_to(ROOT).as_posix(), i.target) for i in imports()}
    assert ("redpss/roles/__init__.py", "config") in found  # under TYPE_CHECKING
    assert ("redpss/cli/redpss.py", "dictionary") in found  # inside a function
    assert ("redpss/cli/redpss.py", "redpss") in found  # from redpss import __version__


@pytest.mark.parametrize(
    ("source", "target", "forbidden"),
    [
        ("dictionary", "landing", True),
        ("dictionary", "wire", False),
        ("wire", "roles", True),
        ("wire", "errors", False),
        ("rest", "roles", True),
        ("roles", "rest", False),
        ("health", "errors", True),
        ("control", "cli", True),
        ("status", "control", True),
        ("control", "status", False),
        ("config", "dictionary", True),
        ("config", "secret", False),
    ],
)
def test_the_rules_say_what_the_design_says(source: str, target: str, forbidden: bool) -> None:
    assert any(r.forbids(source, target) for r in rules()) is forbidden
