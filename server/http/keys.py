"""Typed application and request keys."""

from __future__ import annotations

from aiohttp import web

from ..config import Settings
from ..services.base import Context, Principal

__all__ = ["CONTEXT", "HUB", "PRINCIPAL", "RATE_LIMITER", "SETTINGS"]

CONTEXT = web.AppKey("context", Context)
SETTINGS = web.AppKey("settings", Settings)
RATE_LIMITER = web.AppKey("rate_limiter", object)
PRINCIPAL = web.RequestKey("principal", Principal)
HUB = web.AppKey("hub", object)
