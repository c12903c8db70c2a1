"""Thin views for attachment blobs and receipts: parse, authenticate, call a service, reply."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from opseal.crypto.encoding import b64e

from ..errors import BadRequest, PayloadTooLarge
from ..services import blobs, receipts
from .auth import principal
from .parse import area_ref, b64_field, context, int_query, json_body, ok

__all__ = ["routes"]

routes = web.RouteTableDef()
API = "/api/v1"
AREA = f"{API}/operations/{{operation_id}}/areas/{{area}}"
_RANGE = re.compile(r"bytes=(\d{0,18})-(\d{0,18})")


# -- parsing ---------------------------------------------------------------------------
def _size_field(body: dict[str, Any]) -> int:
    value = body.get("size")
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest("field 'size': expected an integer number of bytes", field="size")
    return value


async def _chunk_body(request: web.Request) -> bytes:
    """The raw chunk, refused before it is read when it announces itself too large."""
    if request.content_type != "application/octet-stream":
        raise BadRequest("body: expected Content-Type application/octet-stream")
    limit = context(request).settings.max_blob_chunk_bytes
    if (request.content_length or 0) > limit:
        raise PayloadTooLarge(f"chunk of {request.content_length} bytes exceeds {limit} bytes")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise PayloadTooLarge(f"chunk larger than {limit} bytes") from exc


def _byte_range(request: web.Request) -> tuple[int | None, int | None] | None:
    """One HTTP byte range as ``(first, last)`` (inclusive; ``(None, n)``: last n bytes)."""
    header = request.headers.get("Range")
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        raise BadRequest("Range: expected one range: bytes=first-last, bytes=first- or bytes=-n")
    first, last = (int(g) if g else None for g in match.groups())
    if first is not None and last is not None and last < first:
        raise BadRequest("Range: the last byte comes before the first")
    return first, last


# -- blobs -----------------------------------------------------------------------------
@routes.post(f"{AREA}/blobs")
async def post_blob(request: web.Request) -> web.Response:
    who = await principal(request)
    body = await json_body(request)
    sha256 = b64_field(body, "sha256") or b""
    result = await blobs.create_blob(
        context(request), who, area_ref(request), _size_field(body), sha256
    )
    return ok(result, 201)


@routes.put(f"{API}/blobs/{{blob_id}}")
async def put_blob_chunk(request: web.Request) -> web.Response:
    who = await principal(request)
    if "offset" not in request.query:
        raise BadRequest("query 'offset': required", field="offset")
    offset = int_query(request, "offset", 0, low=0, high=2**62)
    data = await _chunk_body(request)
    return ok(
        await blobs.put_chunk(context(request), who, request.match_info["blob_id"], offset, data)
    )


@routes.get(f"{API}/blobs/{{blob_id}}")
async def get_blob(request: web.Request) -> web.Response:
    who = await principal(request)
    return ok(await blobs.blob_info(context(request), who, request.match_info["blob_id"]))


@routes.get(f"{API}/blobs/{{blob_id}}/data")
async def get_blob_data(request: web.Request) -> web.StreamResponse:
    who = await principal(request)
    ctx = context(request)
    download = await blobs.open_download(
        ctx, who, request.match_info["blob_id"], _byte_range(request)
    )
    response = web.StreamResponse(status=206 if download.partial else 200)
    response.content_type = "application/octet-stream"
    response.content_length = download.length
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["ETag"] = f'"{b64e(download.sha256)}"'
    if download.partial:
        response.headers["Content-Range"] = (
            f"bytes {download.start}-{download.end - 1}/{download.size}"
        )
    await response.prepare(request)
    async for piece in blobs.read_range(ctx, download):
        await response.write(piece)
    await response.write_eof()
    return response


# -- receipts --------------------------------------------------------------------------
@routes.post(f"{API}/receipts")
async def post_receipt(request: web.Request) -> web.Response:
    who = await principal(request)
    body = await json_body(request)
    result = await receipts.post_receipt(context(request), who, b64_field(body, "receipt") or b"")
    return ok(result, 201 if result["created"] else 200)


@routes.get(f"{AREA}/messages/{{message_id}}/receipts")
async def get_receipts(request: web.Request) -> web.Response:
    who = await principal(request)
    status = await receipts.receipt_status(
        context(request), who, area_ref(request), request.match_info["message_id"]
    )
    return ok(status)
