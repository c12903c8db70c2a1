"""Web app fixtures: the installed bundle and the real server serving it (SQLite: the app's
files touch no database, the browser scenarios' operations do).

Without a built app (``make web-build`` needs node) the suite is skipped, and fails under CI.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import pytest

from opseal.server.config import Settings
from opseal.server.services import instance as admin
from opseal.server.storage.db import make_engine, migrate
from opseal.wire.bundle import Bundle, installed

from ..server.conftest import Server, start_server


def require(condition: bool, reason: str) -> None:
    """Skip without ``condition`` locally; under CI (``CI`` set) that is a failure."""
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (required under CI)")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def bundle() -> Bundle:
    """The web app this installation ships."""
    built = installed()
    require(built is not None, "the web app is not built: run `make web-build` (needs node)")
    assert built is not None
    return built


@pytest.fixture
async def web_server(bundle, tmp_path) -> AsyncIterator[Server]:
    """The real server, serving the installed app, on a fresh SQLite database."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'opseal.db'}"
    await asyncio.to_thread(migrate, url)
    engine = make_engine(url)
    await admin.initialise(engine, int(time.time()))
    await engine.dispose()
    srv = await start_server(Settings(database_url=url, rate_limit_per_minute=100_000))
    yield srv
    for api in srv.clients:
        await api.close()
    await srv.runner.cleanup()
