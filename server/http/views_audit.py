"""Audit-log views: signed checkpoints, entries and proofs for any authenticated device.

Entries hold metadata only (ids, hashes, codes); each device reads those it needs to know,
an auditor organisation (setting ``auditor_orgs``) all of them (:mod:`..services.audit`).
"""

from __future__ import annotations

from aiohttp import web

from opseal.crypto.encoding import b64e
from opseal.crypto.merkle import Checkpoint
from opseal.wire import audit as wa
from opseal.wire.scalars import MAX_INDEX

from ..errors import BadRequest
from ..services import audit
from ..services.base import Context
from .auth import principal
from .parse import body, context, query, reply, typed
from .routing import EndpointRoutes

__all__ = ["routes"]

routes = EndpointRoutes()


def _checkpoint(ctx: Context, checkpoint: Checkpoint) -> wa.Checkpoint:
    return wa.Checkpoint(
        log_id=checkpoint.log_id,
        size=checkpoint.size,
        root=b64e(checkpoint.root),
        timestamp=checkpoint.timestamp,
        checkpoint=b64e(checkpoint.to_bytes()),
        log_key=b64e(ctx.instance.log_key.verify_key.raw),
    )


def _path_size(request: web.Request) -> int:
    raw = request.match_info["size"]
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19) or int(raw) > MAX_INDEX:
        raise BadRequest(f"path 'size': expected an integer from 0 to {MAX_INDEX}", field="size")
    return int(raw)


@routes.endpoint("get_checkpoint")
async def get_checkpoint(request: web.Request) -> web.Response:
    await principal(request)
    ctx = context(request)
    return reply(_checkpoint(ctx, await audit.latest_checkpoint(ctx)))


@routes.endpoint("get_checkpoint_at")
async def get_checkpoint_at(request: web.Request) -> web.Response:
    await principal(request)
    ctx = context(request)
    return reply(_checkpoint(ctx, await audit.checkpoint_at(ctx, _path_size(request))))


@routes.endpoint("get_entries")
async def get_entries(request: web.Request) -> web.Response:
    who = await principal(request)
    q = query(request, wa.EntriesQuery)
    end = q.start + audit.MAX_PAGE if q.end is None else q.end
    page = await audit.entries(context(request), who, q.start, end)
    return reply(typed(page, wa.AuditEntries))


@routes.endpoint("get_inclusion_proof")
async def get_inclusion_proof(request: web.Request) -> web.Response:
    await principal(request)
    q = query(request, wa.InclusionQuery)
    proof = await audit.inclusion_proof(context(request), q.index, q.size)
    return reply(wa.InclusionProof(index=q.index, size=q.size, proof=[b64e(h) for h in proof]))


@routes.endpoint("get_consistency_proof")
async def get_consistency_proof(request: web.Request) -> web.Response:
    await principal(request)
    q = query(request, wa.ConsistencyQuery)
    proof = await audit.consistency_proof(context(request), q.old, q.new)
    return reply(wa.ConsistencyProof(old=q.old, new=q.new, proof=[b64e(h) for h in proof]))


@routes.endpoint("post_declaration")
async def post_declaration(request: web.Request) -> web.Response:
    """A client declares an action on decrypted content (e.g. an export with personal data)."""
    who = await principal(request)
    req = await body(request, wa.Declaration)
    index = await audit.declare(
        context(request),
        who,
        action=req.action,
        operation_id=req.operation_id,
        records=req.records,
        include_personal=req.include_personal,
    )
    return reply(wa.Declared(index=index), 201)
