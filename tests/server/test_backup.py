"""`opseal-server backup-key`, `backup` and `restore`, run as an operator runs them: a backup
taken while members post restores onto a new database and another blob store, opens only with
the operator key, refuses a changed file, and the audit log says what was restored (design §13)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import aiohttp
import pytest
from sqlalchemy import func, select

from opseal.server.config import Settings
from opseal.server.storage import audit
from opseal.server.storage.db import make_engine, migrate
from opseal.server.storage.tables import events, instance

from .conftest import fresh_database, start_server
from .helpers import make_area, post_text
from .test_blobs import ciphertext, declare, upload

PASSPHRASE = "correct horse battery staple, twice"


async def opseal_server(*argv: str, database_url: str, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "OPSEAL_DATABASE_URL": database_url,
               "OPSEAL_BACKUP_PASSPHRASE": PASSPHRASE, **env}  # fmt: skip
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "opseal.server.cli", *argv],
        env=environ, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


async def count(url: str, table) -> int:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(select(func.count()).select_from(table))).scalar_one()
    finally:
        await engine.dispose()


async def test_backup_during_posts_restores_onto_a_new_database_and_store(
    operation, database_url, tmp_path
):
    state, secret = await make_area(operation, "seizures", ["coordinator", "customs"])
    data, _ = ciphertext()
    blob_id = await declare(operation.actors["customs"].api, operation, data)
    await upload(operation.actors["customs"].api, blob_id, data)
    for counter in range(1, 4):
        await post_text(operation, "customs", "seizures", state, secret, counter)
    key = tmp_path / "operator.key"
    made = await opseal_server("backup-key", "--out", str(key), database_url=database_url)
    assert made.returncode == 0, made.stderr
    assert oct(key.stat().st_mode & 0o777) == "0o600"

    # The backup runs while the member keeps posting: it holds one snapshot.
    backup_file = tmp_path / "instance.backup"
    running = asyncio.ensure_future(opseal_server(
        "backup", "--recipient", f"{key}.pub", "--out", str(backup_file),
        database_url=database_url))  # fmt: skip
    counter = 4
    while not running.done():
        await post_text(operation, "customs", "seizures", state, secret, counter)
        await asyncio.sleep(0.05)
        counter += 1
    done = await running
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    backed_up_events = summary["rows"]["events"]
    assert summary["rows"]["instance"] == 1
    assert backed_up_events >= 3 + 3  # the posts and the area's commits
    raw = backup_file.read_bytes()
    async with operation.server.ctx.engine.connect() as conn:
        token_key = (await conn.execute(select(instance.c.token_key))).scalar_one()
    for secret_bytes in (token_key, data[:64], b"French Customs", b"seizures"):
        assert secret_bytes not in raw  # nothing in the clear

    # Restore onto a new database, with the blob bytes going to a folder this time.
    backend = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    async for fresh in fresh_database(backend, tmp_path / "restored"):
        await asyncio.to_thread(migrate, fresh)
        store = f"file:{tmp_path / 'restored-blobs'}"
        if backend == "sqlite":  # the refusals do not depend on the backend
            changed = bytearray(raw)
            changed[len(raw) // 2] ^= 1
            (tmp_path / "changed.backup").write_bytes(changed)
            refused = await opseal_server("restore", str(tmp_path / "changed.backup"), "--key",
                                          str(key), database_url=fresh)  # fmt: skip
            assert refused.returncode == 1
            assert "was changed" in refused.stderr
            wrong = await opseal_server("restore", str(backup_file), "--key", str(key),
                                        database_url=fresh,
                                        OPSEAL_BACKUP_PASSPHRASE="not it at all!!")  # fmt: skip
            assert wrong.returncode == 1
            assert "does not open" in wrong.stderr
            assert await count(fresh, instance) == 0  # refusals wrote nothing

        restored = await opseal_server("restore", str(backup_file), "--key", str(key),
                                       database_url=fresh, OPSEAL_BLOB_STORE=store)  # fmt: skip
        assert restored.returncode == 0, restored.stderr
        assert await count(fresh, events) == backed_up_events
        again = await opseal_server("restore", str(backup_file), "--key", str(key),
                                    database_url=fresh, OPSEAL_BLOB_STORE=store)  # fmt: skip
        assert again.returncode == 1
        assert "already holds an instance" in again.stderr

        # The restored instance serves the blob from the new store to the same member, and
        # its log extends the backed-up log by one entry saying so.
        server = await start_server(Settings(database_url=fresh, blob_store=store))
        try:
            token = operation.actors["coordinator"].api.token
            async with (
                aiohttp.ClientSession() as session,
                session.get(
                    f"{server.url}/api/v1/blobs/{blob_id}/data",
                    headers={"Authorization": f"Bearer {token}"},
                ) as answer,  # fmt: skip
            ):
                assert (answer.status, await answer.read()) == (200, data)
            size = summary["audit_size"]
            async with (
                operation.server.ctx.engine.connect() as old,
                server.ctx.engine.connect() as new,
            ):
                assert await audit.leaf_hashes(new, 0, size) == await audit.leaf_hashes(
                    old, 0, size
                )
                first = json.loads((await audit.read_entries(new, size, size + 1))[0][1])
            assert (first["event"], first["backup_audit_size"]) == ("instance-restored", size)
        finally:
            await server.runner.cleanup()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_operator_key_needs_a_long_passphrase_and_backup_a_real_recipient(
    database_url, tmp_path
):
    short = await opseal_server("backup-key", "--out", str(tmp_path / "k"),
                                database_url=database_url,
                                OPSEAL_BACKUP_PASSPHRASE="short")  # fmt: skip
    assert short.returncode == 1
    assert "at least 16 characters" in short.stderr
    (tmp_path / "bogus.pub").write_text("ssh-ed25519 AAAA\n")
    bogus = await opseal_server("backup", "--recipient", str(tmp_path / "bogus.pub"), "--out",
                                str(tmp_path / "b"), database_url=database_url)  # fmt: skip
    assert bogus.returncode == 1
    assert "not an operator public key" in bogus.stderr
    assert not (tmp_path / "b").exists()
