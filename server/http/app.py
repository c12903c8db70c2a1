"""The application factory, used by ``opseal-server serve`` and by the tests alike."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest

from opseal.wire import ops

from ..bus import LocalBus
from ..config import Settings
from ..errors import Forbidden, Unauthorized
from ..services.areas import event_json
from ..services.audit import checkpoint_age
from ..services.base import Context, load_instance
from ..services.tail import AreaTail
from ..storage.db import check_schema, make_engine, ping
from .keys import CONTEXT, SETTINGS
from .middlewares import (
    RATE_LIMITER,
    RateLimiter,
    front_middleware,
)
from .openapi import routes as openapi_routes
from .parse import reply
from .routing import EndpointRoutes
from .stream import HUB, StreamHub, close_streams
from .stream import routes as stream_routes
from .views import routes as api_routes
from .views_audit import routes as audit_routes
from .views_blobs import routes as blob_routes
from .webapp import load as load_web_app
from .webapp import routes as web_routes

__all__ = ["create_app"]

ops_routes = EndpointRoutes()


def create_app(settings: Settings) -> web.Application:
    """An aiohttp application serving the OpSeal API with ``settings``.

    Start-up opens the database, refuses an unmigrated schema, loads the instance keys and
    starts the event bus (``LISTEN/NOTIFY`` on PostgreSQL); the web app's installed bundle is
    read here, and one that does not match its manifest stops the start.
    """
    app = web.Application(
        middlewares=[front_middleware],
        client_max_size=max(settings.max_body_bytes, settings.max_blob_chunk_bytes) + 65536,
    )
    app[RATE_LIMITER] = RateLimiter(settings.rate_limit_per_minute)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_context)
    app.on_shutdown.append(close_streams)
    app.add_routes(ops_routes)
    app.add_routes(api_routes)
    app.add_routes(blob_routes)
    app.add_routes(audit_routes)
    app.add_routes(stream_routes)
    app.add_routes(openapi_routes)
    app.add_routes(web_routes)
    return app


async def _context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    engine = make_engine(settings.database_url)
    try:
        await check_schema(engine, settings.migrations_path)  # `serve` printed its notice
        instance = await load_instance(engine)
        await asyncio.to_thread(load_web_app, app)
        bus = await _bus(settings, engine)
        ctx = app[CONTEXT] = Context(settings, engine, instance, bus)
        hub = app[HUB] = StreamHub(ctx, AreaTail(engine, event_json))
        await bus.start()
        hub.start()
        yield
        await hub.close()
        await bus.close()
        await ctx.chunks.close()
        await ctx.presigner.close()
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
    """The database answers: ready to serve (not while draining: a balancer sends new
    clients elsewhere)."""
    if request.app[HUB].draining:
        return reply(ops.NotReady(status="unavailable"), 503)
    try:
        async with request.app[CONTEXT].engine.connect() as conn:
            await ping(conn)
    except Exception:
        return reply(ops.NotReady(status="unavailable"), 503)
    return reply(ops.Ready(status="ready"))


CHECKPOINT_AGE = Gauge(
    "opseal_audit_checkpoint_age_seconds",
    "Seconds since the newest audit checkpoint was signed (-1 before the first)",
)
POOL_SIZE = Gauge("opseal_db_pool_size", "Database connections this node may open (with overflow)")
POOL_IN_USE = Gauge("opseal_db_pool_in_use", "Database connections checked out of the pool")


async def _sample_gauges(ctx: Context) -> None:
    """The gauges read at scrape time: checkpoint age (one indexed query) and the pool."""
    age = await checkpoint_age(ctx)
    CHECKPOINT_AGE.set(-1 if age is None else age)
    pool = ctx.engine.pool
    size, overflow = getattr(pool, "size", None), getattr(pool, "_max_overflow", 0)
    if callable(size):  # a queue pool (PostgreSQL); SQLite's has no fixed size
        POOL_SIZE.set(size() + max(0, overflow))
        POOL_IN_USE.set(pool.checkedout())  # type: ignore[attr-defined]


@ops_routes.endpoint("metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus metrics, behind ``metrics_token`` or for local scrapers only."""
    _check_metrics_access(request, request.app[SETTINGS])
    await _sample_gauges(request.app[CONTEXT])
    body = await asyncio.to_thread(generate_latest)  # the process collector reads /proc
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _check_metrics_access(request: web.Request, settings: Settings) -> None:
    """With a token set, the bearer must match it; without, the peer must be loopback and
    not a proxy forwarding someone else (no forwarding header)."""
    if settings.metrics_token:
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, f"Bearer {settings.metrics_token}".encode()):
            raise Unauthorized("/metrics needs the bearer token of the setting metrics_token")
        return
    forwarded = "X-Forwarded-For" in request.headers or "Forwarded" in request.headers
    if forwarded or not _is_loopback(request.remote):
        raise Forbidden(
            "/metrics answers loopback peers only; set metrics_token to scrape it from elsewhere"
        )


def _is_loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False
