"""Request parsing and responses for views, through the wire types of :mod:`opseal.wire`.

Bodies and query parameters are decoded by msgspec into their wire type; every failure is a
clear ``BadRequest`` naming the field. Limits that an operator configures (body size here,
batch and blob sizes in the services) are checked in code, where the setting is known.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from aiohttp import web

from opseal.crypto.encoding import b64d
from opseal.crypto.errors import CryptoError
from opseal.wire.decode import WireError, decode_body, decode_query, encode, unstorable

from ..errors import BadRequest, PayloadTooLarge
from ..services.areas import AreaRef
from ..services.base import Context
from .keys import CONTEXT

__all__ = ["area_ref", "body", "bytes_of", "check_path", "context", "query", "reply", "typed"]

T = TypeVar("T")


def context(request: web.Request) -> Context:
    return request.app[CONTEXT]


def reply(value: Any, status: int = 200) -> web.Response:
    """A JSON response encoding the wire structure ``value``."""
    return web.Response(body=encode(value), status=status, content_type="application/json")


def typed(data: Any, type_: type[T]) -> T:
    """A service's answer as its wire type, checked against the contract on the way out."""
    return msgspec.convert(data, type_)


def area_ref(request: web.Request) -> AreaRef:
    """The operation and area named by the path."""
    return AreaRef(request.match_info["operation_id"], request.match_info["area"])


async def body(request: web.Request, type_: type[T]) -> T:
    """The request's JSON body as ``type_``, at most ``max_body_bytes`` long."""
    limit = request.app[CONTEXT].settings.max_body_bytes
    too_large = PayloadTooLarge(f"request body larger than {limit} bytes", limit=limit)
    if (request.content_length or 0) > limit:
        raise too_large
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise too_large from exc
    if len(raw) > limit:
        raise too_large
    try:
        return decode_body(raw, type_)
    except WireError as exc:
        raise _bad(exc) from exc


def query(request: web.Request, type_: type[T]) -> T:
    """The request's query parameters as ``type_``."""
    try:
        return decode_query(request.query, type_)
    except WireError as exc:
        raise _bad(exc) from exc


def bytes_of(text: str, name: str) -> bytes:
    """The bytes of a base64url field the wire type has already checked for its alphabet."""
    try:
        return b64d(text, field=f"field {name!r}")
    except CryptoError as exc:
        raise BadRequest(str(exc), field=name) from exc


def check_path(request: web.Request) -> None:
    """Refuse path parameters that no identifier can hold (before they reach a query)."""
    for name, value in request.match_info.items():
        if unstorable(value):  # PostgreSQL refuses NUL; no backend stores a lone surrogate
            raise BadRequest(
                f"path {name!r}: NUL and unpaired surrogate characters are not allowed",
                field=name,
            )


def _bad(error: WireError) -> BadRequest:
    return BadRequest(error.message, **({"field": error.field} if error.field else {}))
