"""Fixtures of the web client's tests: the real server, enrolled Python members, the
TypeScript client core driven in a Node process (``web/tools/drive.ts``), and the installed
web app with the real server serving it (without a built app, ``make web-build`` needs node,
its tests are skipped, and fail under CI)."""
# ruff: noqa: F401 -- fixtures imported from the other suites are parameters here

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from opseal.server.config import Settings
from opseal.server.services import instance as admin
from opseal.server.storage.db import make_engine, migrate
from opseal.wire.bundle import Bundle, installed

from ..client.conftest import database_url, onboarded, server, settings
from ..server.conftest import Server, start_server
from .browser import BROWSER_DRIVER, CHROMIUM, Browser

WEB = Path(__file__).resolve().parents[2] / "web"
DRIVER = WEB / "build" / "tools" / "drive.js"


class NodeError(Exception):
    """The TypeScript client raised: ``name`` is its error class."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name, self.message = name, message


class Driver:
    """Sends one command to the Node process and returns its answer (or raises NodeError)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def __call__(self, cmd: str, **args: Any) -> Any:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write((json.dumps({"cmd": cmd, **args}) + "\n").encode())
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        if not line:
            raise RuntimeError(f"the node driver ended during {cmd!r}")
        answer = json.loads(line)
        if "error" in answer:
            raise NodeError(answer["error"]["name"], answer["error"]["message"])
        return answer["ok"]


def node_args() -> list[str]:
    """Node with a global WebSocket (a flag before Node 22)."""
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI"):
            pytest.fail("node is missing: the web client's tests cannot run")
        pytest.skip("node is missing: the TypeScript client core is not tested (make web-test)")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    major = int(version.stdout.strip().lstrip("v").split(".")[0])
    return [node, *(["--experimental-websocket"] if major < 22 else []), "--no-warnings"]


@pytest.fixture
async def node() -> AsyncIterator[Driver]:
    """The TypeScript client core in a Node process (built by ``make web-build``)."""
    args = node_args()
    if not DRIVER.exists():
        pytest.fail(f"{DRIVER} is missing: run `make web-build` first")
    proc = await asyncio.create_subprocess_exec(
        *args, str(DRIVER), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    yield Driver(proc)
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        await asyncio.wait_for(proc.wait(), 10)
    except TimeoutError:
        proc.kill()
        await proc.wait()


# -- the web app ---------------------------------------------------------------------------
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


@pytest.fixture
async def browser(bundle) -> AsyncIterator[Browser]:
    """Debian's Chromium under playwright-core (``make web-build`` compiles its driver)."""
    require(shutil.which("node") is not None, "node is missing: the browser tests cannot run")
    require(Path(CHROMIUM).exists(), f"{CHROMIUM} is missing (Debian's chromium package)")
    require(BROWSER_DRIVER.exists(), f"{BROWSER_DRIVER} is missing: run `make web-build`")
    chromium = await Browser.launch()
    yield chromium
    await chromium.close()
