"""REST API pieces without servers: tokens, audit lines, landing and spool views, the page."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from redpss.cli import restctl
from redpss.errors import RedpssError, RoleError
from redpss.instance import Instance
from redpss.rest import audit_path, tokens_path, ui, views
from redpss.rest.audit import write_audit
from redpss.rest.tls import check_tls_files
from redpss.rest.tokens import TokenStore


def test_tokens_are_stored_hashed_and_checked(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "etc" / "rest_tokens.json")
    secret = store.add("ops", "operator")
    reader = store.add("ro", "reader")
    text = store.path.read_text()
    assert secret not in text and reader not in text
    assert store.path.stat().st_mode & 0o777 == 0o600
    assert store.check(secret) is not None and store.check(secret).role == "operator"  # type: ignore[union-attr]
    assert store.check(reader).name == "ro"  # type: ignore[union-attr]
    assert store.check("x" + secret) is None
    with pytest.raises(RedpssError, match="exists"):
        store.add("ops", "reader")
    with pytest.raises(RedpssError, match="unknown role"):
        store.add("x", "admin")
    assert [t.name for t in store.list()] == ["ops", "ro"]
    assert store.revoke("ro") and not store.revoke("ro")
    assert TokenStore(store.path).check(reader) is None


def test_audit_is_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "log" / "audit.log"
    write_audit(path, who="ops", what="suspend", result="ok", client="127.0.0.1")
    write_audit(path, who="-", what="POST /api/resume", result="denied 401")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["user"] for r in rows] == ["token:ops", "-"]
    assert [r["exit_code"] for r in rows] == [0, 1]
    assert {"time", "user", "host", "tool", "command", "result", "client"} <= set(rows[0])


def test_views_count_folders_and_read_sidecars(tmp_path: Path) -> None:
    inst = Instance("u1", tmp_path)
    error = inst.home / "data" / "error"
    error.mkdir(parents=True)
    (error / "a.csv").write_text("1")
    (error / "a.csv.error.json").write_text('{"reason": "bad line", "line": 3}')
    (error / "gone.csv.error.json").write_text("not json")
    counts = views.landing_counts(inst)
    assert counts == {"input": 0, "work": 0, "error": 1, "archive": 0}
    rows = {r["name"]: r for r in views.landing_errors(inst)}
    assert rows["a.csv"]["reason"] == "bad line" and rows["a.csv"]["present"]
    assert "not readable" in rows["gone.csv"]["reason"] and not rows["gone.csv"]["present"]
    assert views.sendmail_counts(inst) == dict.fromkeys(
        ("tmp", "queue", "inflight", "sent", "dead"), 0
    )


def test_missing_certificate_is_named(make_instance: Callable[..., Instance]) -> None:
    inst = make_instance("u2")
    with pytest.raises(RoleError, match=r"cert\.pem"):
        check_tls_files(inst)


def test_restctl_tokens_and_usage(
    make_instance: Callable[..., Instance],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inst = make_instance("u3")
    monkeypatch.setenv("REDHOME", str(inst.redhome))
    assert restctl.main(["--instance", "u3", "token", "add", "ci", "--role", "reader"]) == 0
    token = capsys.readouterr().out.strip()
    assert TokenStore(tokens_path(inst)).check(token) is not None
    assert restctl.main(["--instance", "u3", "token", "list"]) == 0
    assert "ci" in capsys.readouterr().out
    assert restctl.main(["--instance", "u3", "token", "revoke", "ci"]) == 0
    assert '"command": "token revoke"' in audit_path(inst).read_text()
    assert restctl.main(["--instance", "u3", "status"]) == 3  # rest_enabled = false
    assert restctl.main([]) == 2
    with pytest.raises(SystemExit) as exc:
        restctl.main(["token", "add", "x", "--role", "admin"])
    assert exc.value.code == 2


def test_page_escapes_the_instance_name() -> None:
    assert "<b>a&lt;b</b>" in ui.page("a<b")
