"""Bearer-token authentication for views."""

from __future__ import annotations

from aiohttp import web

from ..errors import Unauthorized
from ..services import identity
from ..services.base import Principal
from .keys import CONTEXT, PRINCIPAL

__all__ = ["BEARER_PROTOCOL", "STREAM_PROTOCOL", "bearer_token", "principal"]

STREAM_PROTOCOL = "opseal.v1"
"""The WebSocket subprotocol of the stream, chosen when a client offers it."""
BEARER_PROTOCOL = "opseal.bearer."
"""Prefix of the subprotocol that carries a browser's bearer token (design §17)."""


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    token = _protocol_token(request)
    if not token:
        raise Unauthorized("missing bearer token: log in first")
    return token


def _protocol_token(request: web.Request) -> str:
    """A browser cannot set an Authorization header on a WebSocket: its token comes as the
    subprotocol ``opseal.bearer.<token>``, offered next to ``opseal.v1`` (only on an upgrade)."""
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return ""
    for item in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
        item = item.strip()
        if item.startswith(BEARER_PROTOCOL):
            return item[len(BEARER_PROTOCOL) :]
    return ""


async def principal(request: web.Request) -> Principal:
    """The authenticated device of this request (cached on the request)."""
    if PRINCIPAL not in request:
        request[PRINCIPAL] = await identity.authenticate(
            request.app[CONTEXT], bearer_token(request)
        )
    return request[PRINCIPAL]
