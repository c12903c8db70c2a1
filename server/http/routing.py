"""Handlers registered against the route table of :mod:`opseal.wire.endpoints`.

A view names its endpoint (``@routes.endpoint("enrol")``) and gets the method and path the
table gives it, so the router, the document and the client's view of the API cannot drift.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from opseal.wire.endpoints import by_name

__all__ = ["EndpointRoutes"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class EndpointRoutes(web.RouteTableDef):
    """A route table whose routes come from endpoint names."""

    def endpoint(self, name: str) -> Callable[[Handler], Handler]:
        """Register the decorated handler at the endpoint ``name``'s method and path."""
        spec = by_name(name)
        return self.route(spec.method, spec.path)
