"""Thin views: decode, authenticate, call a service, encode. Rules live in services; the
request and response types live in :mod:`opseal.wire`."""

from __future__ import annotations

from aiohttp import web

from opseal.crypto.encoding import b64e
from opseal.wire import identity as wi
from opseal.wire import operations as wo

from ..services import areas, group_commit, identity, onboarding, operations
from .auth import bearer_token, principal
from .parse import area_ref, body, bytes_of, context, query, reply, typed
from .routing import EndpointRoutes

__all__ = ["routes"]

routes = EndpointRoutes()


# -- instance and identity -------------------------------------------------------------
@routes.endpoint("get_instance")
async def get_instance(request: web.Request) -> web.Response:
    ctx = context(request)
    key = ctx.instance.log_key.verify_key
    return reply(
        wi.Instance(
            instance_id=ctx.instance.instance_id,
            name=ctx.settings.instance_name,
            log_key=b64e(key.raw),
            log_key_fingerprint=key.fingerprint,
        )
    )


@routes.endpoint("enrol")
async def enrol(request: web.Request) -> web.Response:
    req = await body(request, wi.EnrolRequest)
    root_key = None if req.root_key is None else bytes_of(req.root_key, "root_key")
    who = await identity.enrol(
        context(request),
        req.code,
        root_key,
        bytes_of(req.user_certificate, "user_certificate"),
        bytes_of(req.device_certificate, "device_certificate"),
    )
    return reply(wi.Enrolled(device_id=who.device_id, org_id=who.org_id, user_id=who.user_id), 201)


@routes.endpoint("auth_challenge")
async def auth_challenge(request: web.Request) -> web.Response:
    req = await body(request, wi.ChallengeRequest)
    value, expires = await identity.challenge(context(request), req.device_id)
    return reply(wi.Challenge(challenge=b64e(value), expires_at=expires))


@routes.endpoint("auth_login")
async def auth_login(request: web.Request) -> web.Response:
    req = await body(request, wi.LoginRequest)
    token, expires = await identity.login(
        context(request),
        req.device_id,
        bytes_of(req.challenge, "challenge"),
        bytes_of(req.signature, "signature"),
    )
    return reply(wi.Session(token=token, expires_at=expires))


@routes.endpoint("auth_logout")
async def auth_logout(request: web.Request) -> web.Response:
    await principal(request)
    await identity.logout(context(request), bearer_token(request))
    return reply(wi.LoggedOut(logged_out=True))


@routes.endpoint("whoami")
async def whoami(request: web.Request) -> web.Response:
    who = await principal(request)
    return reply(
        wi.WhoAmI(
            device_id=who.device_id, org_id=who.org_id, user_id=who.user_id, user_kind=who.user_kind
        )
    )


@routes.endpoint("get_org")
async def get_org(request: web.Request) -> web.Response:
    await principal(request)
    org = await identity.organisation(context(request), request.match_info["org_id"])
    return reply(typed(org, wi.Organisation))


@routes.endpoint("post_user")
async def post_user(request: web.Request) -> web.Response:
    who = await principal(request)
    req = await body(request, wi.Certificate)
    user_id = await identity.register_user(
        context(request),
        who,
        request.match_info["org_id"],
        bytes_of(req.certificate, "certificate"),
    )
    return reply(wi.UserRegistered(user_id=user_id), 201)


@routes.endpoint("post_device")
async def post_device(request: web.Request) -> web.Response:
    who = await principal(request)
    req = await body(request, wi.Certificate)
    device_id = await identity.register_device(
        context(request),
        who,
        request.match_info["org_id"],
        bytes_of(req.certificate, "certificate"),
    )
    return reply(wi.DeviceRegistered(device_id=device_id), 201)


@routes.endpoint("post_revocation")
async def post_revocation(request: web.Request) -> web.Response:
    who = await principal(request)
    req = await body(request, wi.Revocation)
    subject = await identity.revoke(
        context(request), who, request.match_info["org_id"], bytes_of(req.statement, "statement")
    )
    return reply(wi.Revoked(revoked=subject), 201)


@routes.endpoint("post_enrolment_code")
async def post_enrolment_code(request: web.Request) -> web.Response:
    who = await principal(request)
    req = await body(request, wi.EnrolmentCodeRequest)
    org_id = request.match_info["org_id"]
    expires_at = await onboarding.issue_enrolment_code(
        context(request),
        who,
        org_id,
        bytes_of(req.code_hash, "code_hash"),
        req.expires_at,
        bytes_of(req.signature, "signature"),
    )
    return reply(wi.EnrolmentCodeIssued(org_id=org_id, expires_at=expires_at), 201)


@routes.endpoint("get_revocations")
async def get_revocations(request: web.Request) -> web.Response:
    await principal(request)
    q = query(request, wi.RevocationsQuery)
    page = await identity.revocations(context(request), q.after, q.limit)
    return reply(typed(page, wi.Revocations))


@routes.endpoint("get_device")
async def get_device(request: web.Request) -> web.Response:
    await principal(request)
    async with context(request).engine.connect() as conn:
        record = await identity.device_record(conn, request.match_info["device_id"])
    return reply(
        wi.Device(
            device_id=record.device_id,
            org_id=record.org_id,
            user_id=record.user_id,
            device_certificate=b64e(record.device_cert),
            user_certificate=b64e(record.user_cert),
            revoked=record.revoked,
        )
    )


# -- operations ------------------------------------------------------------------------
@routes.endpoint("post_operation")
async def post_operation(request: web.Request) -> web.Response:
    who = await principal(request)
    req = await body(request, wo.CreateOperation)
    result = await operations.create_operation(
        context(request), who, bytes_of(req.charter, "charter"), req.retention_days
    )
    return reply(typed(result, wo.CharterPublished), 201)


@routes.endpoint("get_operations")
async def get_operations(request: web.Request) -> web.Response:
    who = await principal(request)
    found = await operations.list_operations(context(request), who)
    return reply(typed({"operations": found}, wo.Operations))


@routes.endpoint("get_operation")
async def get_operation(request: web.Request) -> web.Response:
    who = await principal(request)
    found = await operations.get_operation(
        context(request), who, request.match_info["operation_id"]
    )
    return reply(typed(found, wo.OperationDetail))


@routes.endpoint("get_charter")
async def get_charter(request: web.Request) -> web.Response:
    who = await principal(request)
    versions = await operations.charter_history(
        context(request), who, request.match_info["operation_id"]
    )
    return reply(wo.CharterHistory(versions=versions))


@routes.endpoint("post_charter")
async def post_charter(request: web.Request) -> web.Response:
    who = await principal(request)
    req = await body(request, wo.CharterRequest)
    result = await operations.publish_charter(
        context(request), who, request.match_info["operation_id"], bytes_of(req.charter, "charter")
    )
    return reply(typed(result, wo.CharterPublished), 201)


@routes.endpoint("post_phase")
async def post_phase(request: web.Request) -> web.Response:
    who = await principal(request)
    req = await body(request, wo.PhaseRequest)
    phase = await operations.set_phase(
        context(request), who, request.match_info["operation_id"], req.phase
    )
    return reply(typed({"phase": phase}, wo.PhaseSet))


# -- areas -----------------------------------------------------------------------------
@routes.endpoint("post_key_package")
async def post_key_package(request: web.Request) -> web.Response:
    who = await principal(request)
    req = await body(request, wo.KeyPackageRequest)
    seq = await areas.post_key_package(
        context(request), who, area_ref(request), bytes_of(req.key_package, "key_package")
    )
    return reply(wo.Stored(seq=seq), 201)


@routes.endpoint("get_key_packages")
async def get_key_packages(request: web.Request) -> web.Response:
    who = await principal(request)
    packages = await areas.list_key_packages(context(request), who, area_ref(request))
    return reply(wo.KeyPackages(key_packages=packages))


@routes.endpoint("post_commit")
async def post_commit(request: web.Request) -> web.Response:
    who = await principal(request)
    req = await body(request, wo.CommitRequest)
    result = await areas.post_commit(
        context(request), who, area_ref(request), bytes_of(req.commit, "commit")
    )
    return reply(typed(result, wo.CommitStored), 201)


@routes.endpoint("get_commits")
async def get_commits(request: web.Request) -> web.Response:
    who = await principal(request)
    after = query(request, wo.CommitsQuery).after_epoch
    found = await areas.list_commits(context(request), who, area_ref(request), after)
    return reply(wo.Commits(commits=found))


@routes.endpoint("post_message")
async def post_message(request: web.Request) -> web.Response:
    who = await principal(request)
    req = await body(request, wo.MessageRequest)
    seq = await group_commit.post_message(context(request), who, area_ref(request), req.envelope)
    return reply(wo.Stored(seq=seq), 201)


@routes.endpoint("post_batch")
async def post_batch(request: web.Request) -> web.Response:
    who = await principal(request)
    req = await body(request, wo.MessageBatch)
    seqs = await areas.post_messages(context(request), who, area_ref(request), req.envelopes)
    return reply(wo.BatchStored(seqs=seqs), 201)


@routes.endpoint("get_events")
async def get_events(request: web.Request) -> web.Response:
    who = await principal(request)
    q = query(request, wo.EventsQuery)
    found = await areas.list_events(context(request), who, area_ref(request), q.after, q.limit)
    return reply(typed({"events": found}, wo.Events))


@routes.endpoint("get_sync")
async def get_sync(request: web.Request) -> web.Response:
    who = await principal(request)
    q = query(request, wo.SyncQuery)
    return reply(typed(await areas.sync(context(request), who, q.cursor, q.limit), wo.SyncPage))
