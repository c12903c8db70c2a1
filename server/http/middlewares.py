"""The one middleware: request ids and logs, metrics, CORS and security headers, rate limits,
and the one error converter."""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence

import structlog
from aiohttp import web
from prometheus_client import Counter, Histogram
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from ..errors import (
    BadRequest,
    MethodNotAllowed,
    NotFound,
    OpSealError,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    Unavailable,
)
from ..services.audit import address_tag
from ..services.base import Context, Principal
from .auth import principal as authenticate
from .keys import CONTEXT, PRINCIPAL, SETTINGS
from .parse import check_path
from .webapp import cors_headers, preflight

__all__ = [
    "RATE_LIMITER",
    "RateLimiter",
    "client_address",
    "front_middleware",
]

log = structlog.get_logger("opseal.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REQUESTS = Counter("opseal_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("opseal_http_request_seconds", "HTTP request latency", ["route"])
REFUSALS = Counter("opseal_refusals_total", "Requests refused", ["code"])
RATE_LIMITED = Counter(
    "opseal_rate_limited_total", "Requests refused by the rate limit (not audited)", ["scope"]
)
UNAUDITED = Counter(
    "opseal_refusals_unaudited_total",
    "Unauthenticated refusals beyond the first per network and minute, or the global cap"
    " (not audited)",
)
Networks = Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def front_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request's way in, as one coroutine: an id, a log line (without bodies or tokens)
    and metrics; CORS preflights and headers with the security headers (:mod:`.webapp`); the
    error converter (:func:`_guarded`) around the rate limit and the view.

    These were four middlewares, each one more layer of coroutines and wrappers that every
    request went through (design §13 "SQLite statements on the loop")."""
    request_id = request.headers.get("X-Request-Id", "")[:64] or _new_request_id()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    start = time.perf_counter()
    status = 500
    try:
        response = preflight(request)
        if response is None:
            response = await _guarded(request, handler)
        response = cors_headers(request, response)
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


_REQUEST_ID_KEY = os.urandom(32)
_REQUEST_NUMBERS = itertools.count(1)


def _new_request_id() -> str:
    """32 hex digits unique to the request, telling nothing (not even how many requests came
    before): the request's number in this process under a keyed BLAKE2b. A ``uuid4`` asked the
    kernel for randomness per request, letting go of the interpreter lock: ~15 µs a request
    in the server (design §13)."""
    number = next(_REQUEST_NUMBERS).to_bytes(8, "big")
    return hashlib.blake2b(number, key=_REQUEST_ID_KEY, digest_size=16).hexdigest()


def _json_error(error: OpSealError, request_id: str | None = None) -> web.Response:
    response = web.json_response(error.to_json(), status=error.status)
    if request_id:
        response.headers["X-Request-Id"] = request_id
    return response


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The answer of the rate limit and the view, every error turned into ``{"error": {...}}``;
    refusals audited; internal failures hidden."""
    try:
        check_path(request)
        await _rate_limit(request)
        return await handler(request)
    except OpSealError as error:
        await _audit_refusal(request, error)
        return _json_error(error)
    except web.HTTPRequestEntityTooLarge as exc:
        too_large = PayloadTooLarge(f"request body too large: {exc.text}")
        await _audit_refusal(request, too_large)
        return _json_error(too_large)
    except web.RequestPayloadError:  # e.g. a body that its Content-Encoding does not fit
        unreadable = BadRequest("body: cannot be read: truncated or not in its Content-Encoding")
        await _audit_refusal(request, unreadable)
        return _json_error(unreadable)
    except web.HTTPNotFound:
        return _json_error(NotFound(f"no such endpoint: {request.method} {request.path}"))
    except web.HTTPMethodNotAllowed as exc:
        not_allowed = MethodNotAllowed(f"method {request.method} not allowed here")
        return _json_error(not_allowed) if exc.status == 405 else exc
    except web.HTTPException:
        raise
    except Exception as exc:
        if _database_unavailable(exc):
            cause = getattr(exc, "orig", None) or exc
            log.warning("database unavailable", method=request.method, route=_route(request),
                        error=type(cause).__name__)  # fmt: skip
            return _json_error(Unavailable("the database is unavailable: retry shortly"))
        log.exception("unhandled error", method=request.method, route=_route(request))
        internal = OpSealError("internal server error; the request id identifies it in the logs")
        return _json_error(internal)


def _database_unavailable(exc: Exception) -> bool:
    """Whether ``exc`` says the database cannot be reached right now — a connection lost
    mid-request (a restart: the pool has let it go), one refused or not accepted while the
    database starts, stops or is full, a commit that failed on the database's side, or the pool
    exhausted — rather than a fault of the request: the answer is 503, to retry (design §13)."""
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or exc.statement is None  # None: while connecting
    return isinstance(exc, (ConnectionError, TimeoutError, PoolTimeout))


async def _audit_refusal(request: web.Request, error: OpSealError) -> None:
    """Audit a refusal, except 429s (counted in metrics only) and the unauthenticated
    refusals of a network after its first in the current minute, or beyond the global cap
    (counted likewise)."""
    REFUSALS.labels(error.code).inc()
    if isinstance(error, RateLimited):
        return
    principal = request.get(PRINCIPAL)
    remote = client_address(request, request.app[SETTINGS].trusted_networks)
    limiter = request.app[RATE_LIMITER]
    if principal is None and not limiter.first_refusal_this_minute(remote):
        UNAUDITED.inc()
        return
    ctx: Context = request.app[CONTEXT]
    try:
        await ctx.audit(
            event="refused",
            code=error.code,
            method=request.method,
            route=_route(request),
            device=principal.device_id if principal else None,
            org=principal.org_id if principal else None,
            remote_tag=address_tag(ctx, remote),  # never the address itself (issue 12)
        )
    except Exception:  # the refusal itself still goes back to the client
        log.exception("could not audit a refusal")


class _Lru(OrderedDict[str, tuple[float, float]]):
    """A bounded map that forgets its least recently used keys."""

    def __init__(self, max_keys: int) -> None:
        super().__init__()
        self.max_keys = max_keys

    def touch(self, key: str, value: tuple[float, float]) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.max_keys:
            self.popitem(last=False)


class RateLimiter:
    """A token bucket per key: the authenticated device, or the client address otherwise.

    At most ``max_keys`` buckets are kept; the least recently used is forgotten first, so a
    flood of new keys cannot reset an active client's bucket. The limiter also remembers, per
    network, the minute of its last audited unauthenticated refusal, and how many it audited
    this minute.
    """

    def __init__(
        self,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.rate, self.burst, self.clock = per_minute / 60.0, max(per_minute // 6, 10), clock
        self.buckets = _Lru(max_keys)
        self.refusals = _Lru(max_keys)
        self.anonymous_audits = (-1.0, 0)  # (wall minute, audited anonymous refusals in it)

    def allow(self, key: str) -> bool:
        now = self.clock()
        tokens, last = self.buckets.get(key, (float(self.burst), now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= 1
        self.buckets.touch(key, (tokens - 1 if allowed else tokens, now))
        return allowed

    def first_refusal_this_minute(self, address: str) -> bool:
        """Whether this is the first unauthenticated refusal in this wall minute of the
        address's network (an IPv4 /24, an IPv6 /64: what one host can easily hold), within
        :data:`ANONYMOUS_AUDITS_PER_MINUTE` for all networks together."""
        minute = float(time.time() // 60)
        network = _network(address)
        first = self.refusals.get(network, (-1.0, 0.0))[0] != minute
        self.refusals.touch(network, (minute, 0.0))
        if not first:
            return False
        if self.anonymous_audits[0] != minute:
            self.anonymous_audits = (minute, 0)
        if self.anonymous_audits[1] >= ANONYMOUS_AUDITS_PER_MINUTE:
            return False
        self.anonymous_audits = (minute, self.anonymous_audits[1] + 1)
        return True


def _network(address: str) -> str:
    """The /24 (IPv4) or /64 (IPv6) network of ``address``; anything else as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 64
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


ANONYMOUS_AUDITS_PER_MINUTE = 60
"""At most this many unauthenticated refusals are audited per wall minute, from all networks
together; the rest are counted in ``opseal_refusals_unaudited_total`` only."""

RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)


def client_address(request: web.Request, trusted: Networks) -> str:
    """The client's address: the peer, or, when the peer is a trusted proxy, the nearest
    ``X-Forwarded-For`` hop that is not itself a trusted proxy."""
    remote = request.remote or ""
    if not trusted or not _is_trusted(remote, trusted):
        return remote
    header = ",".join(request.headers.getall("X-Forwarded-For", []))
    hops = [h.strip() for h in header.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else remote


def _is_trusted(address: str, trusted: Networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


async def _device(request: web.Request) -> Principal | None:
    """The authenticated device, or None: a missing, unknown or expired token is left for
    the view to refuse, and the request is limited on its address meanwhile."""
    if not request.headers.get("Authorization", "").lower().startswith("bearer "):
        return None
    try:
        return await authenticate(request)
    except Unauthorized:
        return None


async def _rate_limit(request: web.Request) -> None:
    """Limit each authenticated device, and each client address for everything else."""
    limiter = request.app[RATE_LIMITER]
    device = await _device(request)
    if device is not None:
        scope, key = "device", f"device:{device.device_id}"
    else:
        scope, key = (
            "address",
            f"ip:{client_address(request, request.app[SETTINGS].trusted_networks)}",
        )
    if not limiter.allow(key):
        RATE_LIMITED.labels(scope).inc()
        raise RateLimited("too many requests: slow down and retry in a few seconds")
