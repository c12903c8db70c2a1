"""Bodies of the operational probes."""

from __future__ import annotations

from typing import Literal

from .base import Response

__all__ = ["Alive", "NotReady", "Ready"]


class Alive(Response):
    """The process is up."""

    status: Literal["ok"]


class Ready(Response):
    """The database answers."""

    status: Literal["ready"]


class NotReady(Response):
    """The database does not answer."""

    status: Literal["unavailable"]
