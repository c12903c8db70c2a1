"""Every table's rows, read in one consistent snapshot and written back into an empty
database: the storage half of ``opseal-server backup`` and ``restore`` (design §13).

Tables come from the schema's metadata in dependency order, so a table added later is backed
up without a change here. Rows travel as plain lists of column values in column order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import Integer, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .tables import instance, metadata

__all__ = ["TABLES", "insert_rows", "is_empty", "read_snapshot", "reset_sequences"]

TABLES = [table for table in metadata.sorted_tables]
"""Parents before children, so inserting in this order satisfies every foreign key."""

_PAGE = 500


async def read_snapshot(
    engine: AsyncEngine, *, postgres: bool
) -> AsyncIterator[tuple[str, list[str], list[list[Any]]]]:
    """``(table, columns, rows)`` pages of every table, all from one snapshot: a
    ``REPEATABLE READ`` transaction on PostgreSQL, one read transaction on SQLite (WAL)."""
    async with engine.connect() as conn:
        if postgres:
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            for table in TABLES:
                columns = [str(c.name) for c in table.columns]
                order = list(table.primary_key.columns) or list(table.columns)
                result = await conn.stream(select(table).order_by(*order))
                async for partition in result.partitions(_PAGE):
                    yield str(table.name), columns, [list(row) for row in partition]


async def is_empty(conn: AsyncConnection) -> bool:
    """No instance yet: the database was migrated but never initialised or restored into."""
    return (await conn.execute(select(func.count()).select_from(instance))).scalar_one() == 0


async def insert_rows(
    conn: AsyncConnection, table_name: str, columns: Sequence[str], rows: list[list[Any]]
) -> None:
    table = metadata.tables[table_name]
    await conn.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])


async def reset_sequences(conn: AsyncConnection) -> None:
    """PostgreSQL: move each serial column's sequence past the restored ids."""
    for table in TABLES:
        for column in table.primary_key.columns:
            if isinstance(column.type, Integer) and column.autoincrement is True:
                highest = select(func.coalesce(func.max(column), 1)).scalar_subquery()
                sequence = func.pg_get_serial_sequence(table.name, column.name)
                await conn.execute(select(func.setval(sequence, highest)))
