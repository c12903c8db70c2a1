"""Request parsing and responses for views: JSON bodies and fields, each failure a clear
``BadRequest``."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from opseal.crypto.encoding import b64d
from opseal.crypto.errors import CryptoError

from ..errors import BadRequest, PayloadTooLarge
from ..services.areas import AreaRef
from ..services.base import Context
from .keys import CONTEXT

__all__ = [
    "area_ref",
    "b64_field",
    "check_path",
    "context",
    "int_query",
    "json_body",
    "list_field",
    "ok",
    "str_field",
]

# Text no database column can hold: PostgreSQL refuses NUL, and neither backend can encode
# an unpaired surrogate (JSON's "\ud800" escape).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def context(request: web.Request) -> Context:
    return request.app[CONTEXT]


def ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def area_ref(request: web.Request) -> AreaRef:
    """The operation and area named by the path."""
    return AreaRef(request.match_info["operation_id"], request.match_info["area"])


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body, at most ``max_body_bytes`` long."""
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
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest(f"body: malformed JSON ({exc})") from exc
    if not isinstance(body, dict):
        raise BadRequest("body: expected a JSON object")
    return body


def str_field(
    body: dict[str, Any], name: str, *, max_len: int = 256, optional: bool = False
) -> str:
    value = body.get(name)
    if value is None and optional:
        return ""
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise BadRequest(f"field {name!r}: expected a string of 1-{max_len} characters", field=name)
    if _UNSTORABLE.search(value):
        raise BadRequest(
            f"field {name!r}: NUL and unpaired surrogate characters are not allowed", field=name
        )
    return value


def check_path(request: web.Request) -> None:
    """Refuse path parameters that no identifier can hold (before they reach a query)."""
    for name, value in request.match_info.items():
        if _UNSTORABLE.search(value):
            raise BadRequest(
                f"path {name!r}: NUL and unpaired surrogate characters are not allowed",
                field=name,
            )


def b64_field(body: dict[str, Any], name: str, *, optional: bool = False) -> bytes | None:
    value = body.get(name)
    if value is None and optional:
        return None
    try:
        return b64d(value, field=f"field {name!r}")
    except CryptoError as exc:
        raise BadRequest(str(exc), field=name) from exc


def list_field(body: dict[str, Any], name: str) -> list[Any]:
    value = body.get(name)
    if not isinstance(value, list):
        raise BadRequest(f"field {name!r}: expected a list", field=name)
    return value


def int_query(request: web.Request, name: str, default: int, *, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise BadRequest(f"query {name!r}: expected an integer", field=name) from exc
    if not low <= value <= high:
        raise BadRequest(f"query {name!r}: expected {low} to {high}", field=name)
    return value
