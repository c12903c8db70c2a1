"""Typed application and request keys (the hub's and the rate limiter's live beside their
classes, in :mod:`.stream` and :mod:`.middlewares`)."""

from __future__ import annotations

from aiohttp import web

from ..config import Settings
from ..services.base import Context, Principal

__all__ = ["CONTEXT", "PRINCIPAL", "SETTINGS"]

CONTEXT = web.AppKey("context", Context)
SETTINGS = web.AppKey("settings", Settings)
PRINCIPAL = web.RequestKey("principal", Principal)
