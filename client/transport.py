"""The transport seam: every request of :class:`~opseal.client.api.ApiClient` goes through one
:class:`Transport` object, as httpx's ``AsyncBaseTransport``.

A transport turns an :class:`HttpRequest` into an :class:`HttpResponse` (``handle``) and opens
the event stream (``stream``, WebSocket text frames). It knows nothing of the API: no JSON, no
error codes, except that a refused WebSocket handshake raises the typed error for its status
(the refusal has no body to decode). :class:`AiohttpTransport` is the default; tests plug in an
in-process fake server with the same two methods.

Failures to reach the server raise :class:`~opseal.client.errors.TransportError`.
"""

from __future__ import annotations

import io
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # aiohttp (~0.2 s to import) is loaded by the first transport, not by --help
    pass

from .errors import TransportError, error_for

__all__ = ["AiohttpTransport", "HttpRequest", "HttpResponse", "Transport"]


@dataclass(frozen=True)
class HttpRequest:
    """One request: ``url`` is absolute, ``body`` already encoded (its type in ``headers``)."""

    method: str
    url: str
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None


@dataclass(frozen=True)
class HttpResponse:
    """One answer, read whole."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


class Transport(Protocol):
    """What :class:`~opseal.client.api.ApiClient` sends through."""

    async def handle(self, request: HttpRequest) -> HttpResponse:
        """Send ``request`` and read its answer (any status)."""
        ...

    def stream(self, request: HttpRequest) -> AsyncIterator[str]:
        """Open the WebSocket at ``request.url``; yields its text frames until it closes."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class AiohttpTransport:
    """The default transport: one ``aiohttp.ClientSession``. Create it inside a running loop."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None, timeout: float = 60.0) -> None:
        import aiohttp

        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))

    async def handle(self, request: HttpRequest) -> HttpResponse:
        import aiohttp

        body = None if request.body is None else io.BytesIO(request.body)  # big bytes block
        try:
            async with self._session.request(
                request.method,
                request.url,
                params=dict(request.params),
                headers=dict(request.headers),
                data=body,
                ssl=self._ssl,
            ) as response:
                return HttpResponse(response.status, await response.read(), response.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransportError(_what(request, exc)) from exc

    async def stream(self, request: HttpRequest) -> AsyncIterator[str]:
        import aiohttp

        try:
            async with self._session.ws_connect(
                request.url,
                params=dict(request.params),
                headers=dict(request.headers),
                heartbeat=30,
                ssl=self._ssl,
            ) as ws:
                async for message in ws:
                    if message.type != aiohttp.WSMsgType.TEXT:
                        break
                    yield message.data
        except aiohttp.WSServerHandshakeError as exc:
            code = {401: "unauthorized", 403: "forbidden"}.get(exc.status, "internal")
            body = {"error": {"code": code, "message": str(exc)}}
            raise error_for(exc.status, body) from exc
        except aiohttp.ClientError as exc:
            raise TransportError(f"stream: {exc}") from exc

    async def close(self) -> None:
        await self._session.close()


def _what(request: HttpRequest, exc: BaseException) -> str:
    path = request.url.split("://", 1)[-1].partition("/")[2]
    return f"{request.method} /{path}: {exc.__class__.__name__}: {exc}"
