"""Debian's Chromium driven through playwright-core (``web/tools/browser.ts``): one JSON
command per line to a Node process, which records every request the page makes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

WEB = Path(__file__).resolve().parents[2] / "web"
BROWSER_DRIVER = WEB / "build" / "tools" / "browser.js"
CHROMIUM = os.environ.get("OPSEAL_CHROMIUM", "/usr/bin/chromium")


class BrowserError(Exception):
    """The page did not do what the step asked (playwright's message says what)."""


class Browser:
    """One Chromium, one page at a time; each method is one step a person takes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def launch(cls) -> Browser:
        node = shutil.which("node")
        assert node is not None
        proc = await asyncio.create_subprocess_exec(
            node, str(BROWSER_DRIVER), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, limit=16 * 1024 * 1024,
        )  # fmt: skip
        return cls(proc)

    async def __call__(self, cmd: str, timeout: float = 120, **args: Any) -> Any:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write((json.dumps({"cmd": cmd, **args}) + "\n").encode())
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise BrowserError(f"the browser driver ended during {cmd!r}")
        answer = json.loads(line)
        if "error" in answer:
            raise BrowserError(f"{cmd} {args}: {answer['error']['message']}")
        return answer["ok"]

    async def open(self, url: str) -> dict[str, Any]:
        return await self("open", url=url)

    async def fill(self, label: str, value: str) -> None:
        await self("fill", label=label, value=value)

    async def click(self, name: str, role: str = "button") -> None:
        await self("click", role=role, name=name)

    async def wait_text(self, pattern: str, timeout_ms: int = 60_000) -> str:
        return await self(
            "waitText", text=pattern, timeoutMs=timeout_ms, timeout=timeout_ms / 1000 + 10
        )

    async def text(self, label: str | None = None) -> str:
        return await self("text", **({"label": label} if label else {}))

    async def foreign_requests(self, origin: str) -> list[str]:
        """Every URL the page requested outside ``origin`` (blob: downloads are local)."""
        mine = urlsplit(origin)[:2]
        return [
            r["url"]
            for r in await self("requests")
            if urlsplit(r["url"])[:2] != mine and not r["url"].startswith(("blob:", "data:"))
        ]

    async def close(self) -> None:
        assert self.proc.stdin is not None
        try:
            await self("close")
        finally:
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
