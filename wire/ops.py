"""Bodies of the operational probes."""

from __future__ import annotations

from typing import Literal

from .base import Response

__all__ = ["Alive", "NotReady", "Ready"]


class Alive(Response, frozen=True):
    """The process is up."""

    status: Literal["ok"]


class Ready(Response, frozen=True):
    """The database answers."""

    status: Literal["ready"]


class NotReady(Response, frozen=True):
    """The database does not answer."""

    status: Literal["unavailable"]
