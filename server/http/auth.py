"""Bearer-token authentication for views."""

from __future__ import annotations

from aiohttp import web

from ..errors import Unauthorized
from ..services import identity
from ..services.base import Principal
from .keys import CONTEXT, PRINCIPAL

__all__ = ["bearer_token", "principal"]


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing bearer token: log in first")
    return token.strip()


async def principal(request: web.Request) -> Principal:
    """The authenticated device of this request (cached on the request)."""
    if PRINCIPAL not in request:
        request[PRINCIPAL] = await identity.authenticate(
            request.app[CONTEXT], bearer_token(request)
        )
    return request[PRINCIPAL]
