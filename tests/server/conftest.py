"""Server fixtures: a real server on loopback over a real database, SQLite and PostgreSQL.

Every test that takes ``server`` runs once per backend: SQLite in a temporary folder always,
PostgreSQL when ``OPSEAL_TEST_POSTGRES_URL`` is set (CI sets it); each test gets a fresh
database. Actors are real devices enrolled through the API with the real client.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
import pytest
from aiohttp import web

from opseal.client.api import ApiClient
from opseal.crypto.group import DeviceIdentity, KeyPackage
from opseal.server.config import Settings
from opseal.server.http.app import create_app
from opseal.server.http.keys import CONTEXT
from opseal.server.services import instance as admin
from opseal.server.services.base import Context
from opseal.server.storage.db import make_engine, migrate

from ..crypto.conftest import ORGS, World

PG_URL = os.environ.get("OPSEAL_TEST_POSTGRES_URL", "")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not PG_URL, reason="OPSEAL_TEST_POSTGRES_URL is not set"))]  # fmt: skip


def _admin_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def fresh_database(backend: str, tmp_path) -> AsyncIterator[str]:
    """A migrated, initialised, empty database URL for one test."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'opseal.db'}"
        return
    name = f"opseal_t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(_admin_dsn(PG_URL))
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    base = PG_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        conn = await asyncpg.connect(_admin_dsn(PG_URL))
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


@pytest.fixture(params=BACKENDS)
async def database_url(request, tmp_path) -> AsyncIterator[str]:
    """A fresh, migrated and initialised database on each backend."""
    async for url in fresh_database(request.param, tmp_path):
        await asyncio.to_thread(migrate, url)
        engine = make_engine(url)
        await admin.initialise(engine, int(time.time()))
        await engine.dispose()
        yield url


@dataclass
class Server:
    """A running server: its base URL and its service context."""

    url: str
    ctx: Context
    runner: web.AppRunner
    clients: list[ApiClient] = field(default_factory=list)

    async def client(self) -> ApiClient:
        api = await ApiClient(self.url).__aenter__()
        self.clients.append(api)
        return api


async def start_server(settings: Settings) -> Server:
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return Server(f"http://127.0.0.1:{port}", runner.app[CONTEXT], runner)


@pytest.fixture
def settings(database_url) -> Settings:
    return Settings(database_url=database_url, rate_limit_per_minute=100_000)


@pytest.fixture
async def server(settings) -> AsyncIterator[Server]:
    """The real server on a loopback port."""
    srv = await start_server(settings)
    yield srv
    for api in srv.clients:
        await api.close()
    await srv.runner.cleanup()


@dataclass
class Actor:
    """An enrolled, logged-in device and its client."""

    identity: DeviceIdentity
    api: ApiClient

    @property
    def device_id(self) -> str:
        return self.identity.device_id


@dataclass
class Operation:
    """'STOP V' with one logged-in device per organisation, and an outsider."""

    world: World
    server: Server
    actors: dict[str, Actor]

    @property
    def id(self) -> str:
        return self.world.charter.operation_id

    @property
    def instance_id(self) -> str:
        return self.server.ctx.instance.instance_id

    def package(self, who: str, area: str) -> bytes:
        return KeyPackage.create(self.actors[who].identity, operation_id=self.id, area=area,
                                 now=int(time.time())).to_bytes()  # fmt: skip


ACTOR_ORGS = {
    "coordinator": "wco", "customs": "fr-customs", "customs2": "de-customs",
    "partner": "interpol", "stakeholder": "brandx", "observer": "auditor-org",
    "outsider": "outsider",
}  # fmt: skip


async def enrol(server: Server, world: World, org: str, user_id: str, device_id: str,
                kind: str = "person") -> Actor:  # fmt: skip
    """Register ``org`` if needed, redeem an enrolment code and log the device in."""
    ctx = server.ctx
    try:
        name, org_kind, role = ORGS.get(org, ("Outsider Org", "customs-administration", "-"))
        await admin.create_organisation(
            ctx, org, name, org_kind, can_coordinate=role == "coordinator"
        )
    except Exception:  # already registered by an earlier actor of the same organisation
        pass
    code = await admin.create_enrolment_code(ctx, org)
    identity = world.device(org, user_id, device_id, kind)
    api = await server.client()
    await api.enrol(code, identity.user_cert.to_bytes(), identity.device_cert.to_bytes(),
                    world.roots[org].verify_key.raw)  # fmt: skip
    await api.login(ctx.instance.instance_id, device_id, identity.signing_key)
    return Actor(identity, api)


@pytest.fixture
async def operation(server) -> Operation:
    """An operation whose charter the coordinator published, with every role enrolled."""
    world = World(now=int(time.time()))
    actors = {}
    for role, org in ACTOR_ORGS.items():
        user = "ocu-lead" if role == "coordinator" else f"{role}-user"
        actors[role] = await enrol(server, world, org, user, f"{role}-device")
    await actors["coordinator"].api.create_operation(world.charter.to_bytes())
    return Operation(world, server, actors)
