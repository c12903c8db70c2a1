"""Thin views: parse, authenticate, call a service, serialise. Rules live in services."""

from __future__ import annotations

from aiohttp import web

from opseal.crypto.encoding import b64e

from ..services import areas, identity, operations
from .auth import bearer_token, principal
from .parse import area_ref, b64_field, context, int_query, json_body, list_field, ok, str_field

__all__ = ["routes"]

routes = web.RouteTableDef()
API = "/api/v1"


# -- instance and identity -------------------------------------------------------------
@routes.get(f"{API}/instance")
async def get_instance(request: web.Request) -> web.Response:
    ctx = context(request)
    key = ctx.instance.log_key.verify_key
    return ok(
        {
            "instance_id": ctx.instance.instance_id,
            "name": ctx.settings.instance_name,
            "log_key": b64e(key.raw),
            "log_key_fingerprint": key.fingerprint,
        }
    )


@routes.post(f"{API}/enrol")
async def enrol(request: web.Request) -> web.Response:
    body = await json_body(request)
    who = await identity.enrol(
        context(request),
        str_field(body, "code", max_len=64),
        b64_field(body, "root_key", optional=True),
        b64_field(body, "user_certificate"),
        b64_field(body, "device_certificate"),
    )
    return ok({"device_id": who.device_id, "org_id": who.org_id, "user_id": who.user_id}, 201)


@routes.post(f"{API}/auth/challenge")
async def auth_challenge(request: web.Request) -> web.Response:
    body = await json_body(request)
    value, expires = await identity.challenge(
        context(request), str_field(body, "device_id", max_len=128)
    )
    return ok({"challenge": b64e(value), "expires_at": expires})


@routes.post(f"{API}/auth/login")
async def auth_login(request: web.Request) -> web.Response:
    body = await json_body(request)
    token, expires = await identity.login(
        context(request),
        str_field(body, "device_id", max_len=128),
        b64_field(body, "challenge"),
        b64_field(body, "signature"),
    )
    return ok({"token": token, "expires_at": expires})


@routes.post(f"{API}/auth/logout")
async def auth_logout(request: web.Request) -> web.Response:
    await principal(request)
    await identity.logout(context(request), bearer_token(request))
    return ok({"logged_out": True})


@routes.get(f"{API}/whoami")
async def whoami(request: web.Request) -> web.Response:
    who = await principal(request)
    return ok(
        {
            "device_id": who.device_id,
            "org_id": who.org_id,
            "user_id": who.user_id,
            "user_kind": who.user_kind,
        }
    )


@routes.get(f"{API}/orgs/{{org_id}}")
async def get_org(request: web.Request) -> web.Response:
    await principal(request)
    return ok(await identity.organisation(context(request), request.match_info["org_id"]))


@routes.post(f"{API}/orgs/{{org_id}}/users")
async def post_user(request: web.Request) -> web.Response:
    who = await principal(request)
    body = await json_body(request)
    user_id = await identity.register_user(
        context(request), who, request.match_info["org_id"], b64_field(body, "certificate")
    )
    return ok({"user_id": user_id}, 201)


@routes.post(f"{API}/orgs/{{org_id}}/devices")
async def post_device(request: web.Request) -> web.Response:
    who = await principal(request)
    body = await json_body(request)
    device_id = await identity.register_device(
        context(request), who, request.match_info["org_id"], b64_field(body, "certificate")
    )
    return ok({"device_id": device_id}, 201)


@routes.post(f"{API}/orgs/{{org_id}}/revocations")
async def post_revocation(request: web.Request) -> web.Response:
    who = await principal(request)
    body = await json_body(request)
    subject = await identity.revoke(
        context(request), who, request.match_info["org_id"], b64_field(body, "statement")
    )
    return ok({"revoked": subject}, 201)


@routes.get(f"{API}/devices/{{device_id}}")
async def get_device(request: web.Request) -> web.Response:
    await principal(request)
    async with context(request).engine.connect() as conn:
        record = await identity.device_record(conn, request.match_info["device_id"])
    return ok(
        {
            "device_id": record.device_id,
            "org_id": record.org_id,
            "user_id": record.user_id,
            "device_certificate": b64e(record.device_cert),
            "user_certificate": b64e(record.user_cert),
            "revoked": record.revoked,
        }
    )


# -- operations ------------------------------------------------------------------------
@routes.post(f"{API}/operations")
async def post_operation(request: web.Request) -> web.Response:
    who = await principal(request)
    body = await json_body(request)
    retention = body.get("retention_days", 365)
    if not isinstance(retention, int) or isinstance(retention, bool):
        retention = -1
    result = await operations.create_operation(
        context(request), who, b64_field(body, "charter"), retention
    )
    return ok(result, 201)


@routes.get(f"{API}/operations")
async def get_operations(request: web.Request) -> web.Response:
    who = await principal(request)
    return ok({"operations": await operations.list_operations(context(request), who)})


@routes.get(f"{API}/operations/{{operation_id}}")
async def get_operation(request: web.Request) -> web.Response:
    who = await principal(request)
    return ok(
        await operations.get_operation(context(request), who, request.match_info["operation_id"])
    )


@routes.get(f"{API}/operations/{{operation_id}}/charter")
async def get_charter(request: web.Request) -> web.Response:
    who = await principal(request)
    versions = await operations.charter_history(
        context(request), who, request.match_info["operation_id"]
    )
    return ok({"versions": versions})


@routes.post(f"{API}/operations/{{operation_id}}/charter")
async def post_charter(request: web.Request) -> web.Response:
    who = await principal(request)
    body = await json_body(request)
    result = await operations.publish_charter(
        context(request), who, request.match_info["operation_id"], b64_field(body, "charter")
    )
    return ok(result, 201)


@routes.post(f"{API}/operations/{{operation_id}}/phase")
async def post_phase(request: web.Request) -> web.Response:
    who = await principal(request)
    body = await json_body(request)
    phase = await operations.set_phase(
        context(request),
        who,
        request.match_info["operation_id"],
        str_field(body, "phase", max_len=16),
    )
    return ok({"phase": phase})


# -- areas -----------------------------------------------------------------------------
AREA = f"{API}/operations/{{operation_id}}/areas/{{area}}"


@routes.post(f"{AREA}/key-packages")
async def post_key_package(request: web.Request) -> web.Response:
    who = await principal(request)
    body = await json_body(request)
    seq = await areas.post_key_package(
        context(request), who, area_ref(request), b64_field(body, "key_package")
    )
    return ok({"seq": seq}, 201)


@routes.get(f"{AREA}/key-packages")
async def get_key_packages(request: web.Request) -> web.Response:
    who = await principal(request)
    return ok(
        {"key_packages": await areas.list_key_packages(context(request), who, area_ref(request))}
    )


@routes.post(f"{AREA}/commits")
async def post_commit(request: web.Request) -> web.Response:
    who = await principal(request)
    body = await json_body(request)
    result = await areas.post_commit(
        context(request), who, area_ref(request), b64_field(body, "commit")
    )
    return ok(result, 201)


@routes.get(f"{AREA}/commits")
async def get_commits(request: web.Request) -> web.Response:
    who = await principal(request)
    after = int_query(request, "after_epoch", -1, low=-1, high=2**62)
    return ok(
        {"commits": await areas.list_commits(context(request), who, area_ref(request), after)}
    )


@routes.post(f"{AREA}/messages")
async def post_message(request: web.Request) -> web.Response:
    who = await principal(request)
    body = await json_body(request)
    envelope = body.get("envelope")
    seqs = await areas.post_messages(context(request), who, area_ref(request), [envelope])
    return ok({"seq": seqs[0]}, 201)


@routes.post(f"{AREA}/messages/batch")
async def post_batch(request: web.Request) -> web.Response:
    who = await principal(request)
    body = await json_body(request)
    seqs = await areas.post_messages(
        context(request), who, area_ref(request), list_field(body, "envelopes")
    )
    return ok({"seqs": seqs}, 201)


@routes.get(f"{AREA}/events")
async def get_events(request: web.Request) -> web.Response:
    who = await principal(request)
    after = int_query(request, "after", 0, low=0, high=2**62)
    limit = int_query(request, "limit", 500, low=1, high=5000)
    return ok(
        {"events": await areas.list_events(context(request), who, area_ref(request), after, limit)}
    )


@routes.get(f"{API}/sync")
async def get_sync(request: web.Request) -> web.Response:
    who = await principal(request)
    limit = int_query(request, "limit", 1000, low=1, high=5000)
    return ok(await areas.sync(context(request), who, request.query.get("cursor", ""), limit))
