"""A member's client after the operator restored the instance from a backup: `audit verify`
names exactly the entries it verified before that the restore lost, and continues only when a
person accepts (design §13)."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from opseal.client.audit import LogRestoredError
from opseal.server import backup
from opseal.server.config import Settings
from opseal.server.http.app import create_app
from opseal.server.storage.db import make_engine, migrate

from ..server.conftest import fresh_database

OPERATOR_PASSPHRASE = "an operator's long passphrase"


async def swap_database(server, url: str) -> None:
    """The operator's restart: the same address, now serving the restored database."""
    port = int(server.url.rsplit(":", 1)[1])
    await server.runner.cleanup()
    runner = web.AppRunner(create_app(Settings(database_url=url, rate_limit_per_minute=100_000)))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    server.runner = runner


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_restored_log_names_the_lost_entries_and_needs_acceptance(
    onboarded, server, tmp_path
):
    fr, wco = onboarded.clients["fr-customs"], onboarded.clients["wco"]
    key = tmp_path / "operator.key"
    await asyncio.to_thread(backup.make_operator_key, key, OPERATOR_PASSPHRASE)
    recipient = await asyncio.to_thread(backup.read_recipient, key.with_name("operator.key.pub"))
    made = await backup.write_backup(server.ctx.engine, server.ctx.chunks, recipient,
                                     tmp_path / "b.backup", postgres=False)  # fmt: skip
    kept = made["audit_size"]

    await wco.post("op-stop-v", "plan", "text", {"text": "after the backup"})  # more entries
    seen = (await fr.verify_audit()).size
    assert seen > kept

    async for fresh in fresh_database("sqlite", tmp_path / "restored"):
        await asyncio.to_thread(migrate, fresh)
        engine = make_engine(fresh)
        try:
            await backup.restore(engine, server.ctx.chunks, tmp_path / "b.backup", key,
                                 OPERATOR_PASSPHRASE, postgres=False, now=fr.now())  # fmt: skip
        finally:
            await engine.dispose()
        await swap_database(server, fresh)

        with pytest.raises(LogRestoredError) as refused:
            await fr.verify_audit()
        assert (refused.value.kept, refused.value.seen) == (kept, seen)
        assert f"entries {kept} to {seen - 1} are lost" in str(refused.value)
        with pytest.raises(LogRestoredError):  # the refusal accepted nothing
            await fr.verify_audit()

        report = await fr.verify_audit(accept_restore=True)
        assert report.restored is not None
        assert report.restored.kept == kept
        assert [w for w in fr.warnings() if w[4] == "log-restored"]
        assert (await fr.verify_audit()).restored is None  # the restored log is now the base


def test_only_the_logs_own_restore_entry_explains_a_break():
    """A break is explained only by an ``instance-restored`` entry at index B saying B, with B
    below what the device saw; any other claim leaves the break an attack."""
    from types import SimpleNamespace

    from opseal.client.audit import _restore_in

    last = SimpleNamespace(size=50, timestamp=1)
    entry = {"event": "instance-restored", "backup_audit_size": 40, "time": 1}
    assert _restore_in([(40, entry)], last).kept == 40  # type: ignore[arg-type,union-attr]
    assert _restore_in([(41, entry)], last) is None  # not at the index it names
    assert _restore_in([(40, {**entry, "backup_audit_size": "40"})], last) is None
    late = {**entry, "backup_audit_size": 60}
    assert _restore_in([(60, late)], last) is None  # a later backup cannot break the prefix
    assert _restore_in([(40, {**entry, "event": "login"})], last) is None
    older = SimpleNamespace(size=50, timestamp=2)  # an old restore excuses no later break
    assert _restore_in([(40, entry)], older) is None
    assert _restore_in([(40, {**entry, "time": "1"})], last) is None
