"""Real ``opseal-server serve`` processes, for multi-node, crash and benchmark runs.

A :class:`ServerProcess` runs the installed console script on a free loopback port with its
settings in ``OPSEAL_*`` variables, waits until ``/readyz`` answers and is stopped with SIGTERM
or killed with SIGKILL. A :class:`Node` puts one in front of the ``Server`` interface that the
conftest helpers (``enrol``, ``Operation``) expect: a base URL, clients, and an admin
:class:`Context` on the same database (standing in for ``opseal-server create-org`` and
``enrol-code``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from opseal.client.api import ApiClient
from opseal.server.bus import LocalBus
from opseal.server.config import Settings
from opseal.server.services import instance as admin
from opseal.server.services.base import Context, load_instance
from opseal.server.storage.db import make_engine, migrate

from ..crypto.conftest import World
from .conftest import ACTOR_ORGS, Actor, Operation, enrol

__all__ = [
    "SERVER",
    "Node",
    "ServerProcess",
    "admin_context",
    "cpu_seconds",
    "free_port",
    "open_operation",
    "prepare_database",
]

SERVER = Path(sys.executable).parent / "opseal-server"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of process ``pid`` and of its children, running or ended
    (a server's signature worker is part of the server): the benchmarks' steadier figure.
    Children are read from ``/proc/<pid>/task/*/children`` (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # ut, st, cut, cst
    return own + sum(_child_cpu(child) for child in _children(pid))


def _child_cpu(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except FileNotFoundError:  # it ended meanwhile: counted by its parent once waited
        return 0.0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(FileNotFoundError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def prepare_database(url: str) -> None:
    """Migrate and initialise an empty database, as ``opseal-server migrate`` and ``init`` do."""
    await asyncio.to_thread(migrate, url)
    engine = make_engine(url)
    try:
        await admin.initialise(engine, int(time.time()))
    finally:
        await engine.dispose()


class ServerProcess:
    """One ``opseal-server serve`` subprocess on ``database_url``; a restart keeps its port."""

    def __init__(self, database_url: str, *, env: dict[str, str] | None = None) -> None:
        self.database_url = database_url
        self.extra_env = env or {}
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process

    @property
    def url(self) -> str:
        scheme = "https" if self.extra_env.get("OPSEAL_TLS_CERT") else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._proc is not None, "the server is not running"
        return self._proc.pid

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "OPSEAL_DATABASE_URL": self.database_url,
            "OPSEAL_HOST": "127.0.0.1",
            "OPSEAL_PORT": str(self.port),
            "OPSEAL_RATE_LIMIT_PER_MINUTE": "10000000",
            "OPSEAL_LOG_LEVEL": "warning",
            **self.extra_env,
        }

    async def start(self, timeout: float = 30.0) -> ServerProcess:
        """Start serving and return once ``/readyz`` says ready."""
        self.port = self.port or free_port()  # a restart keeps its port, as a real one would
        self._proc = subprocess.Popen(
            [str(SERVER), "serve"], env=self._env(), stdout=self._log, stderr=self._log
        )
        await self._wait_ready(timeout)
        return self

    async def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while time.monotonic() < deadline:
                if self._proc is not None and self._proc.poll() is not None:
                    raise RuntimeError(f"opseal-server exited at start:\n{self.output()}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    # Readiness only: the TLS tests check the certificate themselves.
                    async with session.get(self.url + "/readyz", ssl=False) as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.05)
        self.kill_now()
        raise RuntimeError(f"opseal-server not ready after {timeout} s:\n{self.output()}")

    def output(self) -> str:
        """What the process wrote so far (logs at warning and above), for failure messages."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-4000:]

    def peak_rss_mb(self) -> float:
        """The process's peak resident set size (``VmHWM``), in MiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc status")

    def kill_now(self) -> None:
        """SIGKILL without waiting: the process gets no chance to finish anything."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)

    async def kill(self) -> None:
        """SIGKILL and reap the process."""
        self.kill_now()
        await self._reap(10.0)

    async def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (aiohttp shuts down gracefully), SIGKILL if it takes longer than ``timeout``."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                await self._reap(timeout)
            except subprocess.TimeoutExpired:
                await self.kill()
        self._proc = None

    async def _reap(self, timeout: float) -> None:
        if self._proc is not None:
            await asyncio.to_thread(self._proc.wait, timeout)

    async def __aenter__(self) -> ServerProcess:
        try:
            return await self.start()
        except BaseException:
            self._log.close()
            raise

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        self._log.close()


@contextlib.asynccontextmanager
async def admin_context(database_url: str) -> AsyncIterator[Context]:
    """A service context on the database, for what an operator does on the server host."""
    engine = make_engine(database_url)
    try:
        settings = Settings(database_url=database_url)
        yield Context(settings, engine, await load_instance(engine), LocalBus())
    finally:
        await engine.dispose()


@dataclass
class Node:
    """A server process as the conftest helpers see a server: URL, admin context, clients."""

    url: str
    ctx: Context
    clients: list[ApiClient] = field(default_factory=list)
    ssl_context: ssl.SSLContext | None = None
    """For a node behind a TLS proxy (tests/deploy/front.py)."""

    async def client(self, *, token: str | None = None, timeout: float = 60.0) -> ApiClient:
        """A client of this node (logged in when given a ``token``), closed by :meth:`close`."""
        api = await ApiClient(self.url, ssl_context=self.ssl_context, timeout=timeout).__aenter__()
        api.token = token
        self.clients.append(api)
        return api

    async def close(self) -> None:
        for api in self.clients:
            await api.close()
        self.clients.clear()


async def open_operation(node: Node) -> Operation:
    """'STOP V' created by the coordinator, with one logged-in device per role, as in conftest."""
    world = World(now=int(time.time()))
    actors: dict[str, Actor] = {}
    for role, org in ACTOR_ORGS.items():
        user = "ocu-lead" if role == "coordinator" else f"{role}-user"
        actors[role] = await enrol(node, world, org, user, f"{role}-device")  # type: ignore[arg-type]
    await actors["coordinator"].api.create_operation(world.charter.to_bytes())
    return Operation(world, node, actors)  # type: ignore[arg-type]
