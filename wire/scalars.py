"""The constrained scalar types every wire structure is built from.

Each is an ``Annotated`` type whose :class:`msgspec.Meta` carries the limit or pattern the
server enforces, so decoding checks it and the generated JSON Schema states it. A field adds
its description with a second ``Meta``: ``Annotated[B64, Meta(description="...")]`` (msgspec
merges them).
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

__all__ = [
    "AREA_NAME",
    "ASSET",
    "B64",
    "B64_IN",
    "B64_PATTERN",
    "ID",
    "INDEX",
    "MAX_INDEX",
    "PHASE",
    "PHASES",
    "SEQ",
    "TIME",
    "UUID",
    "UUID_PATTERN",
]

MAX_INDEX = 2**62
"""The largest sequence number, offset or log index (fits a signed 64-bit column)."""
B64_PATTERN = "^[A-Za-z0-9_-]*$"
"""Unpadded base64url (RFC 4648 §5), the wire form of every byte string."""
UUID_PATTERN = "^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"
PHASES = ("preparation", "active", "follow-up", "closed", "archived")


B64 = Annotated[str, Meta(pattern=B64_PATTERN, extra_json_schema={"contentEncoding": "base64url"})]
B64_IN = Annotated[
    str, Meta(extra_json_schema={"pattern": B64_PATTERN, "contentEncoding": "base64url"})
]
"""Base64url that a request carries: the pattern is documented, and the server checks it
where it turns the text into bytes (``b64d``, which also refuses non-canonical text), so a
large batch is not scanned twice. Answers use :data:`B64`, checked when decoded."""
ID = Annotated[
    str, Meta(min_length=1, max_length=128, description="identifier chosen by its owner")
]
AREA_NAME = Annotated[
    str, Meta(min_length=1, max_length=64, description="area name from the charter")
]
UUID = Annotated[str, Meta(pattern=UUID_PATTERN, extra_json_schema={"format": "uuid"})]
TIME = Annotated[int, Meta(ge=0, description="Unix time in seconds")]
SEQ = Annotated[int, Meta(ge=1, description="the entry's number in its area's gap-free sequence")]
INDEX = Annotated[int, Meta(ge=0, le=MAX_INDEX)]
ASSET = Annotated[str, Meta(pattern="^app-[0-9a-f]{16}$", description="asset name")]
PHASE = Literal["preparation", "active", "follow-up", "closed", "archived"]
