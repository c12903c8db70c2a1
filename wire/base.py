"""The two kinds of wire structure: requests (lenient about extra fields) and responses
(exact).

A request ignores fields it does not know, so a newer client can talk to an older server and
the server's documented request schemas stay open (``additionalProperties`` unset). A response
forbids unknown fields and requires every field (nullable ones included): the document states
closed objects (``additionalProperties: false``) and a client decoding an answer through these
types notices an answer that is not the API's, instead of silently reading part of it.
"""

from __future__ import annotations

import msgspec

__all__ = ["Request", "Response"]


class Request(msgspec.Struct, kw_only=True, frozen=True):
    """Base of request bodies and query parameter sets."""


class Response(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Base of response bodies."""
