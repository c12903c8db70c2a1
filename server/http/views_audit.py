"""Audit-log views: signed checkpoints, entries and proofs for any authenticated device.

Entries hold metadata only (ids, hashes, codes), so reading them needs a login but no role;
the auditor is an organisational job, not a server permission.
"""

from __future__ import annotations

from aiohttp import web

from opseal.crypto.encoding import b64e
from opseal.crypto.merkle import Checkpoint

from ..errors import BadRequest
from ..services import audit
from ..services.base import Context
from .auth import principal
from .keys import CONTEXT
from .parse import int_query, json_body, str_field

__all__ = ["routes"]

routes = web.RouteTableDef()
AUDIT = "/api/v1/audit"
MAX_INDEX = 2**62


def _checkpoint_json(ctx: Context, checkpoint: Checkpoint) -> dict[str, object]:
    return {
        "log_id": checkpoint.log_id,
        "size": checkpoint.size,
        "root": b64e(checkpoint.root),
        "timestamp": checkpoint.timestamp,
        "checkpoint": b64e(checkpoint.to_bytes()),
        "log_key": b64e(ctx.instance.log_key.verify_key.raw),
    }


def _path_size(request: web.Request) -> int:
    raw = request.match_info["size"]
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19) or int(raw) > MAX_INDEX:
        raise BadRequest(f"path 'size': expected an integer from 0 to {MAX_INDEX}", field="size")
    return int(raw)


def _required(request: web.Request, name: str, *, low: int = 0) -> int:
    if name not in request.query:
        raise BadRequest(f"query {name!r}: required", field=name)
    return int_query(request, name, low, low=low, high=MAX_INDEX)


@routes.get(f"{AUDIT}/checkpoint")
async def get_checkpoint(request: web.Request) -> web.Response:
    await principal(request)
    ctx = request.app[CONTEXT]
    return web.json_response(_checkpoint_json(ctx, await audit.latest_checkpoint(ctx)))


@routes.get(f"{AUDIT}/checkpoints/{{size}}")
async def get_checkpoint_at(request: web.Request) -> web.Response:
    await principal(request)
    ctx = request.app[CONTEXT]
    checkpoint = await audit.checkpoint_at(ctx, _path_size(request))
    return web.json_response(_checkpoint_json(ctx, checkpoint))


@routes.get(f"{AUDIT}/entries")
async def get_entries(request: web.Request) -> web.Response:
    await principal(request)
    start = int_query(request, "start", 0, low=0, high=MAX_INDEX)
    end = int_query(request, "end", start + audit.MAX_PAGE, low=0, high=MAX_INDEX + audit.MAX_PAGE)
    return web.json_response(await audit.entries(request.app[CONTEXT], start, end))


@routes.get(f"{AUDIT}/proof/inclusion")
async def get_inclusion_proof(request: web.Request) -> web.Response:
    await principal(request)
    index, size = _required(request, "index"), _required(request, "size", low=1)
    proof = await audit.inclusion_proof(request.app[CONTEXT], index, size)
    return web.json_response({"index": index, "size": size, "proof": [b64e(h) for h in proof]})


@routes.get(f"{AUDIT}/proof/consistency")
async def get_consistency_proof(request: web.Request) -> web.Response:
    await principal(request)
    old, new = _required(request, "old"), _required(request, "new")
    proof = await audit.consistency_proof(request.app[CONTEXT], old, new)
    return web.json_response({"old": old, "new": new, "proof": [b64e(h) for h in proof]})


@routes.post(f"{AUDIT}/declarations")
async def post_declaration(request: web.Request) -> web.Response:
    """A client declares an action on decrypted content (e.g. an export with personal data)."""
    who = await principal(request)
    body = await json_body(request)
    action = str_field(body, "action", max_len=32)
    operation_id = str_field(body, "operation_id", max_len=128)
    records, include_personal = body.get("records"), body.get("include_personal")
    if isinstance(records, bool) or not isinstance(records, int):
        raise BadRequest("field 'records': expected an integer", field="records")
    if not isinstance(include_personal, bool):
        raise BadRequest(
            "field 'include_personal': expected true or false", field="include_personal"
        )
    index = await audit.declare(
        request.app[CONTEXT],
        who,
        action=action,
        operation_id=operation_id,
        records=records,
        include_personal=include_personal,
    )
    return web.json_response({"index": index}, status=201)
