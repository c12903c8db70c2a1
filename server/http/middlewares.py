"""Middlewares: request ids and logs, metrics, rate limits, and the one error converter."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from prometheus_client import Counter, Histogram

from ..errors import (
    BadRequest,
    MethodNotAllowed,
    NotFound,
    OpSealError,
    PayloadTooLarge,
    RateLimited,
)
from ..services.base import Context
from .keys import CONTEXT, PRINCIPAL, RATE_LIMITER
from .parse import check_path

__all__ = ["RateLimiter", "error_middleware", "rate_limit_middleware", "request_middleware"]

log = structlog.get_logger("opseal.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REQUESTS = Counter("opseal_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("opseal_http_request_seconds", "HTTP request latency", ["route"])
REFUSALS = Counter("opseal_refusals_total", "Requests refused", ["code"])


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every request an id, log it (without bodies or tokens) and count it."""
    request_id = request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex
    structlog.contextvars.bind_contextvars(request_id=request_id)
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    finally:
        elapsed = time.perf_counter() - start
        route = _route(request)
        REQUESTS.labels(request.method, route, str(status)).inc()
        LATENCY.labels(route).observe(elapsed)
        principal = request.get(PRINCIPAL)
        log.info(
            "request",
            method=request.method,
            route=route,
            status=status,
            ms=round(elapsed * 1000, 1),
            device=principal.device_id if principal else None,
        )
        structlog.contextvars.unbind_contextvars("request_id")


def _json_error(error: OpSealError, request_id: str | None = None) -> web.Response:
    response = web.json_response(error.to_json(), status=error.status)
    if request_id:
        response.headers["X-Request-Id"] = request_id
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error into ``{"error": {...}}``; audit refusals; hide internal failures."""
    try:
        check_path(request)
        return await handler(request)
    except OpSealError as error:
        await _audit_refusal(request, error)
        return _json_error(error)
    except web.HTTPRequestEntityTooLarge as exc:
        error = PayloadTooLarge(f"request body too large: {exc.text}")
        await _audit_refusal(request, error)
        return _json_error(error)
    except web.RequestPayloadError:  # e.g. a body that its Content-Encoding does not fit
        error = BadRequest("body: cannot be read: truncated or not in its Content-Encoding")
        await _audit_refusal(request, error)
        return _json_error(error)
    except web.HTTPNotFound:
        return _json_error(NotFound(f"no such endpoint: {request.method} {request.path}"))
    except web.HTTPMethodNotAllowed as exc:
        error = MethodNotAllowed(f"method {request.method} not allowed here")
        return _json_error(error) if exc.status == 405 else exc
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unhandled error", method=request.method, route=_route(request))
        internal = OpSealError("internal server error; the request id identifies it in the logs")
        return _json_error(internal)


async def _audit_refusal(request: web.Request, error: OpSealError) -> None:
    REFUSALS.labels(error.code).inc()
    principal = request.get(PRINCIPAL)
    ctx: Context = request.app[CONTEXT]
    try:
        await ctx.audit(
            event="refused",
            code=error.code,
            method=request.method,
            route=_route(request),
            device=principal.device_id if principal else None,
            remote=request.remote,
        )
    except Exception:  # the refusal itself still goes back to the client
        log.exception("could not audit a refusal")


class RateLimiter:
    """A token bucket per key (device, or remote address before login)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = per_minute / 60.0, max(per_minute // 6, 10), clock
        self.buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str) -> bool:
        now = self.clock()
        tokens, last = self.buckets.get(key, (float(self.burst), now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if len(self.buckets) > 100_000:
            self.buckets.clear()
        if tokens < 1:
            self.buckets[key] = (tokens, now)
            return False
        self.buckets[key] = (tokens - 1, now)
        return True


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    limiter: RateLimiter = request.app[RATE_LIMITER]  # type: ignore[assignment]
    auth = request.headers.get("Authorization", "")
    key = auth[-16:] if auth else f"ip:{request.remote}"
    if not limiter.allow(key):
        raise RateLimited("too many requests: slow down and retry in a few seconds")
    return await handler(request)
