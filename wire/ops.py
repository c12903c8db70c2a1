"""Bodies of the operational probes and of the web app's configuration."""

from __future__ import annotations

from typing import Literal

from .base import Response

__all__ = ["Alive", "NotReady", "Ready", "WebConfig"]


class Alive(Response, frozen=True):
    """The process is up."""

    status: Literal["ok"]


class Ready(Response, frozen=True):
    """The database answers."""

    status: Literal["ready"]


class NotReady(Response, frozen=True):
    """The database does not answer."""

    status: Literal["unavailable"]


class WebConfig(Response, frozen=True):
    """Where the web app finds the API (``config.json`` next to its page)."""

    api: str
    """The API's origin (``https://opseal.example``); empty for the page's own origin."""
    bundle_hash: str
    """The SHA-256 of the app's manifest lines, as ``opseal-server status`` prints it."""
    lock_after_seconds: int
    """Seconds without a key press or click after which the app locks itself."""
