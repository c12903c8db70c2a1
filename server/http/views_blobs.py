"""Thin views for attachment blobs and receipts: parse, authenticate, call a service, reply."""

from __future__ import annotations

import re

from aiohttp import web

from opseal.crypto.encoding import b64e
from opseal.wire import blobs as wb

from ..errors import BadRequest, PayloadTooLarge
from ..services import blobs, receipts
from .auth import principal
from .parse import area_ref, body, bytes_of, context, query, reply, typed
from .routing import EndpointRoutes

__all__ = ["routes"]

routes = EndpointRoutes()
_RANGE = re.compile(r"bytes=(\d{0,18})-(\d{0,18})")


# -- parsing ---------------------------------------------------------------------------
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
@routes.endpoint("post_blob")
async def post_blob(request: web.Request) -> web.Response:
    who = await principal(request)
    req = await body(request, wb.BlobRequest)
    result = await blobs.create_blob(
        context(request), who, area_ref(request), req.size, bytes_of(req.sha256, "sha256")
    )
    return reply(typed(result, wb.BlobCreated), 201)


@routes.endpoint("put_blob_chunk")
async def put_blob_chunk(request: web.Request) -> web.Response:
    who = await principal(request)
    offset = query(request, wb.ChunkQuery).offset
    data = await _chunk_body(request)
    progress = await blobs.put_chunk(
        context(request), who, request.match_info["blob_id"], offset, data
    )
    return reply(typed(progress, wb.BlobProgress))


@routes.endpoint("get_blob")
async def get_blob(request: web.Request) -> web.Response:
    who = await principal(request)
    info = await blobs.blob_info(context(request), who, request.match_info["blob_id"])
    return reply(typed(info, wb.Blob))


@routes.endpoint("get_blob_data")
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
@routes.endpoint("post_receipt")
async def post_receipt(request: web.Request) -> web.Response:
    who = await principal(request)
    req = await body(request, wb.ReceiptRequest)
    stored = await receipts.post_receipt(context(request), who, bytes_of(req.receipt, "receipt"))
    return reply(typed(stored, wb.Receipt), 201 if stored["created"] else 200)


@routes.endpoint("get_receipts")
async def get_receipts(request: web.Request) -> web.Response:
    who = await principal(request)
    sender = query(request, wb.ReceiptStatusQuery).sender
    status = await receipts.receipt_status(
        context(request), who, area_ref(request), request.match_info["message_id"], sender
    )
    return reply(typed(status, wb.ReceiptStatus))
