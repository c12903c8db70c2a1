"""The OpenAPI document at ``/api/v1/openapi.json`` (its content: :mod:`.openapi_document`)."""

from __future__ import annotations

from aiohttp import web

from .keys import SETTINGS
from .openapi_document import build_document

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.get("/api/v1/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document, with the limits this server enforces."""
    return web.json_response(build_document(request.app[SETTINGS]))
