"""Messages of the WebSocket stream at ``/api/v1/stream``, told apart by ``type``.

The cursor after an event covers it and everything before, so a client that reconnects with
the last cursor it processed misses nothing and receives nothing twice.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from .base import Response
from .errors import ErrorDetail
from .operations import Event
from .scalars import B64

__all__ = ["StreamError", "StreamEvent", "StreamIdle", "StreamMessage"]

CURSOR = Annotated[B64, Meta(description="the cursor covering everything sent so far")]


class StreamEvent(Response, tag_field="type", tag="event", frozen=True):
    """A new entry of one of the device's areas."""

    event: Event
    cursor: CURSOR


class StreamIdle(Response, tag_field="type", tag="idle", frozen=True):
    """The stream has caught up."""

    cursor: CURSOR


class StreamError(Response, tag_field="type", tag="error", frozen=True):
    """Sent before the server closes a revoked or expired session."""

    error: ErrorDetail


StreamMessage = StreamEvent | StreamIdle | StreamError
"""Any message of the stream; decode with ``msgspec.json.decode(raw, type=StreamMessage)``."""
