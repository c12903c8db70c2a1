"""Alembic environment: runs migrations on the async engine of the configured URL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from opseal.server.storage.db import SCHEMA_COMPAT, make_engine, record_compatibility
from opseal.server.storage.tables import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=lambda name, kind, _parent: kind != "table" or name != SCHEMA_COMPAT,
    )
    with context.begin_transaction():
        context.run_migrations()
        # which earlier code runs on the schema now, for nodes that cannot read these scripts
        record_compatibility(connection, context.script)


async def _run_async() -> None:
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        async with engine.connect() as connection:
            # The engine reads in autocommit on PostgreSQL (storage.db.make_engine): a migration
            # is one transaction — its DDL, alembic_version and the compatibility rows commit
            # together or not at all.
            if connection.dialect.name == "postgresql":
                await connection.execution_options(isolation_level="READ COMMITTED")
            await connection.run_sync(_run)
            await connection.commit()
    finally:  # a failed migration closes its connection too
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; give a database URL")
existing = config.attributes.get("connection")
if existing is not None:
    _run(existing)
else:
    asyncio.run(_run_async())
