"""Archived operations are purged after their retention period, and the purge is audited."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from opseal.server.services import retention
from opseal.server.storage.tables import audit_leaves, events, operations

from .helpers import make_area, post_text

DAY = 86400


async def count(engine, table, **where) -> int:
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    async with engine.connect() as conn:
        return (await conn.execute(query)).scalar_one()


async def test_purge_waits_for_archiving_and_retention(operation):
    """Nothing is purged before the operation is archived and its retention has run out."""
    ctx = operation.server.ctx
    state, secret = await make_area(operation, "seizures", ["customs"])
    await post_text(operation, "customs", "seizures", state, secret, 1)
    assert await retention.due_for_purge(ctx) == []
    await operation.actors["coordinator"].api.set_phase(operation.id, "archived")
    assert await retention.due_for_purge(ctx) == []  # ends in 30 days, kept 365 more
    ctx.clock = lambda: operation.world.now + 400 * DAY
    assert await retention.due_for_purge(ctx) == [operation.id]
    counts = await retention.purge(ctx, operation.id)
    assert counts["events"] >= 3
    assert await count(ctx.engine, events, operation_id=operation.id) == 0
    assert await count(ctx.engine, operations, operation_id=operation.id) == 1
    async with ctx.engine.connect() as conn:
        last = (
            await conn.execute(
                select(audit_leaves.c.entry).order_by(audit_leaves.c.idx.desc()).limit(1)
            )
        ).scalar_one()
    entry = json.loads(last)
    assert (entry["event"], entry["operation"], entry["events"]) == (
        "operation-purged",
        operation.id,
        counts["events"],
    )


async def test_purge_command_lists_what_is_due(database_url):
    """`opseal-server purge --dry-run` lists the operations due, as JSON."""
    command = Path(sys.executable).parent / "opseal-server"
    result = subprocess.run(
        [str(command), "purge", "--dry-run"],
        capture_output=True,
        text=True,
        env={"OPSEAL_DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"},
        check=True,
    )
    assert json.loads(result.stdout) == {"due": []}
