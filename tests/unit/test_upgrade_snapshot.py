"""The snapshot folder of an upgrade: never one that exists (CI: an upgrade and its rollback in
one second collided on tmp/upgrade/<second>/bin, and the rollback failed)."""

from __future__ import annotations

from pathlib import Path

from redpss.upgrade import snapshot_folder


def test_snapshots_of_the_same_second_get_folders_of_their_own(tmp_path: Path) -> None:
    parent = tmp_path / "tmp" / "upgrade"
    made = [snapshot_folder(parent, "20261130T163521") for _ in range(3)]
    assert [p.name for p in made] == ["20261130T163521", "20261130T163521-2", "20261130T163521-3"]
    assert all(p.is_dir() and not any(p.iterdir()) for p in made)
    assert snapshot_folder(parent, "20261130T163522").name == "20261130T163522"
