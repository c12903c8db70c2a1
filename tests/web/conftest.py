"""Fixtures of the web client's tests: the real server, enrolled Python members, and the
TypeScript client core driven in a Node process (``web/tools/drive.ts``)."""
# ruff: noqa: F401 -- fixtures imported from the other suites are parameters here

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ..client.conftest import database_url, onboarded, server, settings

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
