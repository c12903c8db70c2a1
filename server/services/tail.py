"""The newest entries of each area, shared by every stream of one server process.

When a message arrives, hundreds of WebSocket subscribers of its area wake up at once. Each
asks :meth:`AreaTail.after` for the entries past its position; the first one reads them from
the database, the others wait on the same lock and get them from memory. So one wake-up costs
one query per node, not one per subscriber. Entries are immutable once stored, so caching
them is safe; access rights are checked by each stream, not here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ..storage.entries import entries_after

__all__ = ["AreaTail"]

Key = tuple[str, str]


class AreaTail:
    """A bounded, contiguous window of each area's most recent entries."""

    def __init__(
        self, engine: AsyncEngine, to_json: Callable[[Any], dict[str, Any]], keep: int = 1000
    ) -> None:
        self._engine, self._to_json, self._keep = engine, to_json, keep
        self._windows: dict[Key, list[dict[str, Any]]] = {}
        self._locks: dict[Key, asyncio.Lock] = {}

    def _cached(
        self, key: Key, position: int, upto: int, limit: int
    ) -> list[dict[str, Any]] | None:
        window = self._windows.get(key)
        if not window or window[0]["seq"] > position + 1 or window[-1]["seq"] < upto:
            return None
        start = position + 1 - window[0]["seq"]
        return window[start : start + limit]

    async def after(
        self, key: Key, position: int, upto: int, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Entries of area ``key`` after ``position``, at least up to ``upto`` when they exist."""
        if upto <= position:
            return []
        hit = self._cached(key, position, upto, limit)
        if hit is not None:
            return hit
        async with self._locks.setdefault(key, asyncio.Lock()):
            hit = self._cached(key, position, upto, limit)
            if hit is not None:
                return hit
            rows = await self._read(key, position, limit)
            self._remember(key, rows)
            return rows

    async def _read(self, key: Key, position: int, limit: int) -> list[dict[str, Any]]:
        async with self._engine.connect() as conn:
            rows = await entries_after(conn, key[0], key[1], position, limit)
        return [self._to_json(row) for row in rows]

    def _remember(self, key: Key, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        window = self._windows.get(key, [])
        if (
            window
            and window[-1]["seq"] + 1 >= rows[0]["seq"]
            and window[0]["seq"] <= rows[0]["seq"]
        ):
            window = window[: rows[0]["seq"] - window[0]["seq"]] + rows
        else:
            window = rows
        self._windows[key] = window[-self._keep :]
