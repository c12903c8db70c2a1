"""The application factory, used by ``opseal-server serve`` and by the tests alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from opseal.wire import ops

from ..bus import LocalBus
from ..config import Settings
from ..services.areas import event_json
from ..services.base import Context, load_instance
from ..services.tail import AreaTail
from ..storage.db import check_schema, make_engine, ping
from .keys import CONTEXT, SETTINGS
from .middlewares import (
    RATE_LIMITER,
    RateLimiter,
    error_middleware,
    rate_limit_middleware,
    request_middleware,
)
from .openapi import routes as openapi_routes
from .parse import reply
from .routing import EndpointRoutes
from .stream import HUB, StreamHub
from .stream import routes as stream_routes
from .views import routes as api_routes
from .views_audit import routes as audit_routes
from .views_blobs import routes as blob_routes

__all__ = ["create_app"]

ops_routes = EndpointRoutes()


def create_app(settings: Settings) -> web.Application:
    """An aiohttp application serving the OpSeal API with ``settings``.

    Start-up opens the database, refuses an unmigrated schema, loads the instance keys and
    starts the event bus (``LISTEN/NOTIFY`` on PostgreSQL).
    """
    app = web.Application(
        middlewares=[request_middleware, error_middleware, rate_limit_middleware],
        client_max_size=max(settings.max_body_bytes, settings.max_blob_chunk_bytes) + 65536,
    )
    app[RATE_LIMITER] = RateLimiter(settings.rate_limit_per_minute)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_context)
    app.add_routes(ops_routes)
    app.add_routes(api_routes)
    app.add_routes(blob_routes)
    app.add_routes(audit_routes)
    app.add_routes(stream_routes)
    app.add_routes(openapi_routes)
    return app


async def _context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    engine = make_engine(settings.database_url)
    try:
        await check_schema(engine)
        instance = await load_instance(engine)
        bus = await _bus(settings, engine)
        ctx = app[CONTEXT] = Context(settings, engine, instance, bus)
        hub = app[HUB] = StreamHub(ctx, AreaTail(engine, event_json))
        await bus.start()
        hub.start()
        yield
        await hub.close()
        await bus.close()
    finally:
        await engine.dispose()


async def _bus(settings: Settings, engine) -> LocalBus:  # type: ignore[no-untyped-def]
    if settings.is_postgres:
        from ..bus.postgres import PostgresBus

        return PostgresBus(settings.database_url)
    return LocalBus()


@ops_routes.endpoint("healthz")
async def healthz(request: web.Request) -> web.Response:
    """The process is up."""
    return reply(ops.Alive(status="ok"))


@ops_routes.endpoint("readyz")
async def readyz(request: web.Request) -> web.Response:
    """The database answers: ready to serve."""
    try:
        async with request.app[CONTEXT].engine.connect() as conn:
            await ping(conn)
    except Exception:
        return reply(ops.NotReady(status="unavailable"), 503)
    return reply(ops.Ready(status="ready"))


@ops_routes.endpoint("metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus metrics (collected in a thread: the process collector reads /proc)."""
    body = await asyncio.to_thread(generate_latest)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
