"""`opseal-server migrate --check`: what an operator runs before a rolling upgrade — it changes
nothing and says whether migrations are pending or the database is newer than this version."""

from __future__ import annotations

import json
import sqlite3
from types import SimpleNamespace

from opseal.server.cli import main


def test_migrate_check_lists_pending_migrations_and_changes_nothing(tmp_path, monkeypatch, capsys):
    path = tmp_path / "opseal.db"
    monkeypatch.setenv("OPSEAL_DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.setattr("opseal.server.cli.configure_logging", lambda *_: None)  # process-wide

    def check(*extra: str) -> SimpleNamespace:
        code = main(["migrate", *extra])
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)

    empty = check("--check")
    assert empty.returncode == 1
    status = json.loads(empty.stdout)
    assert status["state"] == "pending"
    assert status["database"] is None
    assert status["pending"][0]["revision"] == "0001"
    assert status["pending"][-1]["revision"] == status["head"]
    assert "migration(s) pending: run `opseal-server migrate`" in empty.stderr
    with sqlite3.connect(path) as db:  # nothing was created
        assert db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0

    assert check().returncode == 0
    current = check("--check")
    assert current.returncode == 0
    assert json.loads(current.stdout)["state"] == "current"

    with sqlite3.connect(path) as db:  # as if a later OpSeal version had migrated it
        db.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    newer = check("--check")
    assert newer.returncode == 1
    assert json.loads(newer.stdout)["state"] == "newer"
    assert json.loads(newer.stdout)["keeps_running"] is False
    assert "migrated by a later OpSeal version" in newer.stderr

    with sqlite3.connect(path) as db:  # that version's migration was expand-only
        head = status["head"]
        db.execute("INSERT INTO opseal_schema_compat VALUES ('9999_from_the_future', ?)", (head,))
    expanded = check("--check")
    assert expanded.returncode == 0
    assert json.loads(expanded.stdout)["keeps_running"] is True
    assert "this version still runs on it" in expanded.stderr
