"""A rolling upgrade: node A on this release and node B on the next one, whose migration only
expands the schema, serve the same clients at once; the next release's contract migration
then stops this release from starting, with the reason.

The "next release" is this release's migrations copied to a folder plus one test migration
(a nullable column); node B checks the schema against that folder (``migrations_path``).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from importlib.resources import files
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from opseal.server.storage.db import alembic_config, make_engine, migrate, schema_status

from .conftest import BACKENDS, Operation, fresh_database
from .helpers import envelope, make_area
from .procs import Node, ServerProcess, admin_context, open_operation, prepare_database

AREA = "seizures"

MIGRATION = '''"""{about}

Revision ID: {revision}
Revises: {down}
"""

import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = None
keeps_running = {keeps!r}


def upgrade() -> None:
    {upgrade}


def downgrade() -> None:
    raise NotImplementedError
'''

EXPAND = 'op.add_column("events", sa.Column("upgrade_probe", sa.String(8), nullable=True))'
CONTRACT = """with op.batch_alter_table("events") as batch_op:
        batch_op.drop_column("upgrade_probe")"""


def next_release(tmp_path: Path, name: str, *steps: tuple[str, str, bool]) -> str:
    """This release's migrations plus ``steps`` (revision, upgrade body, expand-only?)."""
    folder = tmp_path / name
    shutil.copytree(str(files("opseal.migrations")), folder,
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    down = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    for revision, upgrade, expand in steps:
        text = MIGRATION.format(about=f"test step {revision}", revision=revision, down=down,
                                keeps=down if expand else None, upgrade=upgrade)  # fmt: skip
        (folder / "versions" / f"{revision}_test_step.py").write_text(text)
        down = revision
    return str(folder)


@pytest.fixture(params=BACKENDS)
async def database(request, tmp_path) -> AsyncIterator[str]:
    async for url in fresh_database(request.param, tmp_path):
        await prepare_database(url)
        yield url


async def _status(url: str, migrations: str = "") -> dict[str, object]:
    engine = make_engine(url)
    try:
        return await schema_status(engine, migrations)
    finally:
        await engine.dispose()


async def _post(op: Operation, api, state, secret: bytes, who: str, counter: int) -> int:  # type: ignore[no-untyped-def]
    return await api.post_message(op.id, AREA, envelope(op, who, state, secret, counter).to_bytes())


async def test_old_and_new_nodes_serve_together_on_an_expanded_schema(database, tmp_path):
    expanded = next_release(tmp_path, "expand", ("9001", EXPAND, True))
    await asyncio.to_thread(migrate, database, expanded)  # the new release's `migrate`
    old = await _status(database)
    assert old["state"] == "newer"
    assert old["keeps_running"] is True
    assert (await _status(database, expanded))["state"] == "current"

    async with (
        ServerProcess(database) as proc_a,
        ServerProcess(database, env={"OPSEAL_MIGRATIONS_PATH": expanded}) as proc_b,
        admin_context(database) as ctx,
    ):
        assert "expand-only migrations that keep it running" in proc_a.output()
        node_a, node_b = Node(proc_a.url, ctx), Node(proc_b.url, ctx)
        try:
            op = await open_operation(node_a)
            state, secret = await make_area(op, AREA, ["customs", "partner"])
            on_a = op.actors["customs"].api
            on_b = await node_b.client(token=op.actors["partner"].api.token)
            start = (await on_b.sync()).cursor
            from_a = await _post(op, on_a, state, secret, "customs", 1)
            from_b = await _post(op, on_b, state, secret, "partner", 1)
            read_on_b = [e.seq for e in (await on_b.sync(start)).events]
            read_on_a = [e.seq for e in (await on_a.sync(start)).events if e.kind == "message"]
            assert read_on_b == read_on_a == [from_a, from_b]
        finally:
            await node_a.close()
            await node_b.close()

        await proc_a.stop()  # every node runs the new release: the contract step may run
        contracted = next_release(
            tmp_path, "contract", ("9001", EXPAND, True), ("9002", CONTRACT, False)
        )
        await asyncio.to_thread(migrate, database, contracted)
        assert (await _status(database))["keeps_running"] is False
        with pytest.raises(RuntimeError, match=r"do not keep this code \(\w+\) running"):
            await proc_a.start()


def test_a_mark_other_than_the_previous_revision_fails_the_migration(tmp_path):
    """`keeps_running` may only name the revision just before (or None): a migration claiming
    an older release still runs would let it skip the steps in between unchecked."""
    folder = next_release(tmp_path, "wrong", ("9001", EXPAND, True))
    script = Path(folder) / "versions" / "9001_test_step.py"
    script.write_text(script.read_text().replace("keeps_running = '", "keeps_running = '0001"))
    with pytest.raises(ValueError, match="keeps_running must be its down_revision"):
        migrate(f"sqlite+aiosqlite:///{tmp_path / 'wrong.db'}", folder)
