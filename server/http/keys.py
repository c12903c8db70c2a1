"""Typed application and request keys."""

from __future__ import annotations

from aiohttp import web

from ..services.base import Context

__all__ = ["CONTEXT", "PRINCIPAL"]

CONTEXT = web.AppKey("context", Context)
PRINCIPAL = "opseal.principal"
