"""The OpenAPI document at ``/api/v1/openapi.json``."""

from __future__ import annotations

from aiohttp import web

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.get("/api/v1/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(
        {"openapi": "3.1.0", "info": {"title": "OpSeal", "version": "1"}, "paths": {}}
    )
