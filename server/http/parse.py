"""Request parsing for views: JSON bodies and fields, each failure a clear ``BadRequest``."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from opseal.crypto.encoding import b64d
from opseal.crypto.errors import CryptoError

from ..errors import BadRequest, PayloadTooLarge
from .keys import CONTEXT

__all__ = ["b64_field", "int_query", "json_body", "list_field", "str_field"]


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise PayloadTooLarge(
            f"request body larger than {request.app[CONTEXT].settings.max_body_bytes} bytes"
        ) from exc
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
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
    return value


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
