"""The OpenAPI 3.1 document of the API, kept as data and built from this server's limits.

Every route the application registers has an operation here (``tests/server/test_openapi.py``
compares the two), and a schemathesis run checks the live server against it. Limits that an
operator can configure (batch size, blob size, chunk size) come from the settings
the server runs with, so the document always states the limits it enforces.

Conventions: bytes travel as unpadded base64url text; every error body is the ``Error``
schema with a machine code from the family in :mod:`opseal.server.errors`; every operation may
answer 429 (rate limit) and 500 (an internal failure, logged under the request id).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from ..config import Settings

__all__ = ["build_document"]

Schema = dict[str, Any]

API = "/api/v1"
AREA = f"{API}/operations/{{operation_id}}/areas/{{area}}"
MAX_INDEX = 2**62
PHASES = ["preparation", "active", "follow-up", "closed", "archived"]

# -- schema helpers ---------------------------------------------------------------------
B64_PATTERN = "^[A-Za-z0-9_-]*$"


def b64(description: str, **extra: Any) -> Schema:
    """Unpadded base64url text (RFC 4648 §5), the wire form of every byte string."""
    return {
        "type": "string",
        "pattern": B64_PATTERN,
        "contentEncoding": "base64url",
        "description": description,
        **extra,
    }


def text(description: str, **extra: Any) -> Schema:
    return {"type": "string", "description": description, **extra}


def integer(description: str, **extra: Any) -> Schema:
    return {"type": "integer", "description": description, **extra}


def nullable(schema: Schema) -> Schema:
    return {**schema, "type": [schema["type"], "null"]}


def obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    """A closed object: responses must not grow undocumented fields."""
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": list(required),
        "additionalProperties": False,
    }


def body_obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    """A request object: the server ignores fields it does not know."""
    schema = obj(required, optional)
    del schema["additionalProperties"]
    return schema


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def array(items: Schema, description: str = "", **extra: Any) -> Schema:
    schema = {"type": "array", "items": items, **extra}
    return {**schema, "description": description} if description else schema


TIME = integer("Unix time in seconds", minimum=0)
ID = text("identifier chosen by its owner", minLength=1, maxLength=128)
AREA_NAME = text("area name from the charter", minLength=1, maxLength=64)
UUID = text("UUID", format="uuid")
SEQ = integer("the entry's number in its area's gap-free sequence", minimum=1)


# -- error responses --------------------------------------------------------------------
ERRORS: dict[int, tuple[str, str, list[str]]] = {
    400: (
        "BadRequest",
        "The request is malformed or a field is invalid; changes nothing.",
        ["bad_request", "invalid_signature"],
    ),
    401: (
        "Unauthorized",
        "No, an unknown or an expired bearer token (or enrolment code).",
        ["unauthorized"],
    ),
    403: (
        "Forbidden",
        "Authenticated but not allowed: not a member, wrong role or phase.",
        ["forbidden", "not_member", "phase_closed"],
    ),
    404: (
        "NotFound",
        "The operation, area, organisation, device, blob or message is unknown.",
        ["not_found"],
    ),
    405: ("MethodNotAllowed", "The path exists but not with this method.", ["method_not_allowed"]),
    409: (
        "Conflict",
        "The request conflicts with stored state (duplicate, wrong epoch, counter, ...).",
        ["conflict", "wrong_epoch", "counter_refused"],
    ),
    413: (
        "PayloadTooLarge",
        "A body, batch, blob or chunk exceeds this server's limit.",
        ["payload_too_large"],
    ),
    416: (
        "RangeNotSatisfiable",
        "The byte range lies outside the blob.",
        ["range_not_satisfiable"],
    ),
    429: (
        "RateLimited",
        "Too many requests from this device or address; retry later.",
        ["rate_limited"],
    ),
    500: (
        "InternalError",
        "An unexpected failure; the X-Request-Id identifies it in the logs.",
        ["internal"],
    ),
    503: (
        "Unavailable",
        "The service cannot answer now (e.g. the audit log is damaged).",
        ["unavailable"],
    ),
}
ALWAYS = (429, 500)
"""Statuses any operation may answer: the rate limit runs before every handler."""


def error_schema() -> Schema:
    return obj(
        {
            "error": obj(
                {
                    "code": text("machine code; the client maps it to an exception class"),
                    "message": text("what failed and how to fix it; never a secret"),
                    "details": {
                        "type": "object",
                        "description": "machine-readable context, e.g. the field or index",
                    },
                }
            )
        }
    )


def error_response(status: int) -> Schema:
    _, description, codes = ERRORS[status]
    schema = {
        "allOf": [
            ref("Error"),
            {"properties": {"error": {"properties": {"code": {"enum": codes}}}}},
        ]
    }
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error_refs(statuses: tuple[int, ...]) -> dict[str, Schema]:
    return {
        str(status): {"$ref": f"#/components/responses/{ERRORS[status][0]}"}
        for status in sorted({*statuses, *ALWAYS})
    }


# -- operations -------------------------------------------------------------------------
def json_content(schema: Schema) -> dict[str, Schema]:
    return {"application/json": {"schema": schema}}


def ok(status: int, description: str, schema: Schema) -> dict[str, Schema]:
    return {str(status): {"description": description, "content": json_content(schema)}}


def path_param(name: str, schema: Schema) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def header(description: str, *, required: bool = False) -> Schema:
    return {"description": description, "required": required, "schema": {"type": "string"}}


def query_param(name: str, schema: Schema, *, required: bool = False) -> Schema:
    return {"name": name, "in": "query", "required": required, "schema": schema}


def operation(
    operation_id: str,
    summary: str,
    tag: str,
    responses: dict[str, Schema],
    *,
    errors: tuple[int, ...] = (),
    body: Schema | None = None,
    params: tuple[Schema, ...] = (),
    auth: bool = True,
) -> Schema:
    """One operation; the statuses every request of its kind can meet are added here."""
    statuses = set(errors)
    if auth:
        statuses.add(401)
    if body is not None:
        statuses |= {400, 413}
    if params:  # bad query values, and path ids holding NUL or unpaired surrogates
        statuses.add(400)
    op: Schema = {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "responses": {**responses, **error_refs(tuple(statuses))},
    }
    if params:
        op["parameters"] = list(params)
    if body is not None:
        op["requestBody"] = {"required": True, "content": json_content(body)}
    if not auth:
        op["security"] = []
    return op


OPERATION_ID = path_param("operation_id", ID)
AREA_PARAM = path_param("area", AREA_NAME)
AREA_PARAMS = (OPERATION_ID, AREA_PARAM)


def ops_paths() -> dict[str, Schema]:
    return {
        "/healthz": {
            "get": operation(
                "healthz",
                "The process is up.",
                "ops",
                ok(200, "Alive", obj({"status": {"const": "ok"}})),
                auth=False,
            )
        },
        "/readyz": {
            "get": operation(
                "readyz",
                "The database answers: ready to serve.",
                "ops",
                {
                    **ok(200, "Ready", obj({"status": {"const": "ready"}})),
                    "503": {
                        "description": "The database does not answer",
                        "content": json_content(obj({"status": {"const": "unavailable"}})),
                    },
                },
                auth=False,
            )
        },
        "/metrics": {
            "get": operation(
                "metrics",
                "Prometheus metrics in the text exposition format.",
                "ops",
                {
                    "200": {
                        "description": "Metrics",
                        "content": {"text/plain": {"schema": text("")}},
                    }
                },
                auth=False,
            )
        },
        f"{API}/openapi.json": {
            "get": operation(
                "openapi",
                "This document.",
                "meta",
                ok(200, "The OpenAPI 3.1 document", {"type": "object"}),
                auth=False,
            )
        },
    }


def identity_paths() -> dict[str, Schema]:
    org_id = path_param("org_id", ID)
    certificate = body_obj({"certificate": b64("the signed certificate encoding")})
    return {
        f"{API}/instance": {
            "get": operation(
                "get_instance",
                "The instance's id, name and audit-log key.",
                "identity",
                ok(200, "The instance", ref("Instance")),
                auth=False,
            )
        },
        f"{API}/enrol": {
            "post": operation(
                "enrol",
                "Redeem a one-time enrolment code: register the organisation's root key "
                "(first enrolment only), a user and a device.",
                "identity",
                ok(201, "Enrolled", obj({"device_id": ID, "org_id": ID, "user_id": ID})),
                body=body_obj(
                    {
                        "code": text("the one-time enrolment code", minLength=1, maxLength=64),
                        "user_certificate": b64("user certificate signed by the root key"),
                        "device_certificate": b64("device certificate signed by the user"),
                    },
                    {"root_key": nullable(b64("Ed25519 root public key (first enrolment)"))},
                ),
                errors=(401, 409),
                auth=False,
            )
        },
        f"{API}/auth/challenge": {
            "post": operation(
                "auth_challenge",
                "A one-time login challenge (issued whether or not the device exists).",
                "identity",
                ok(
                    200,
                    "The challenge",
                    obj({"challenge": b64("32 random bytes"), "expires_at": TIME}),
                ),
                body=body_obj({"device_id": ID}),
                auth=False,
            )
        },
        f"{API}/auth/login": {
            "post": operation(
                "auth_login",
                "Exchange a signed challenge for a short-lived bearer token.",
                "identity",
                ok(200, "Logged in", obj({"token": b64("bearer token"), "expires_at": TIME})),
                body=body_obj(
                    {
                        "device_id": ID,
                        "challenge": b64("the challenge as issued"),
                        "signature": b64("Ed25519 signature of the login statement"),
                    }
                ),
                errors=(401,),
                auth=False,
            )
        },
        f"{API}/auth/logout": {
            "post": operation(
                "auth_logout",
                "End this bearer token's session.",
                "identity",
                ok(200, "Logged out", obj({"logged_out": {"const": True}})),
            )
        },
        f"{API}/whoami": {
            "get": operation(
                "whoami",
                "The authenticated device.",
                "identity",
                ok(
                    200,
                    "The device",
                    obj(
                        {
                            "device_id": ID,
                            "org_id": ID,
                            "user_id": ID,
                            "user_kind": text("person or service"),
                        }
                    ),
                ),
            )
        },
        f"{API}/orgs/{{org_id}}": {
            "get": operation(
                "get_org",
                "An organisation and its root key fingerprint.",
                "identity",
                ok(200, "The organisation", ref("Organisation")),
                params=(org_id,),
                errors=(404,),
            )
        },
        f"{API}/orgs/{{org_id}}/users": {
            "post": operation(
                "post_user",
                "Register a user certificate signed by the organisation's root.",
                "identity",
                ok(201, "Registered", obj({"user_id": ID})),
                params=(org_id,),
                body=certificate,
                errors=(403,),
            )
        },
        f"{API}/orgs/{{org_id}}/devices": {
            "post": operation(
                "post_device",
                "Register a device certificate of a registered user.",
                "identity",
                ok(201, "Registered", obj({"device_id": ID})),
                params=(org_id,),
                body=certificate,
                errors=(403, 404, 409),
            )
        },
        f"{API}/orgs/{{org_id}}/revocations": {
            "post": operation(
                "post_revocation",
                "Record a signed revocation of a user or device key; ends its sessions.",
                "identity",
                ok(201, "Revoked", obj({"revoked": text("the revoked subject")})),
                params=(org_id,),
                body=body_obj({"statement": b64("the signed revocation statement")}),
                errors=(403, 404),
            )
        },
        f"{API}/devices/{{device_id}}": {
            "get": operation(
                "get_device",
                "A device's certificates and revocation state.",
                "identity",
                ok(200, "The device", ref("Device")),
                params=(path_param("device_id", ID),),
                errors=(404,),
            )
        },
    }


def operation_paths() -> dict[str, Schema]:
    charter = body_obj({"charter": b64("the signed charter encoding")})
    charter_ok = obj({"operation_id": ID, "charter_version": integer("", minimum=1)})
    return {
        f"{API}/operations": {
            "post": operation(
                "post_operation",
                "A coordinator organisation creates an operation with charter version 1.",
                "operations",
                ok(201, "Created", charter_ok),
                body=body_obj(
                    {"charter": charter["properties"]["charter"]},
                    {
                        "retention_days": integer(
                            "days the archived operation is kept",
                            minimum=1,
                            maximum=3650,
                            default=365,
                        )
                    },
                ),
                errors=(403, 409),
            ),
            "get": operation(
                "get_operations",
                "Operations whose charter lists the device's organisation.",
                "operations",
                ok(200, "The operations", obj({"operations": array(ref("Operation"))})),
            ),
        },
        f"{API}/operations/{{operation_id}}": {
            "get": operation(
                "get_operation",
                "An operation, with the areas the device's role reads.",
                "operations",
                ok(200, "The operation", ref("OperationDetail")),
                params=(OPERATION_ID,),
                errors=(403, 404),
            )
        },
        f"{API}/operations/{{operation_id}}/charter": {
            "get": operation(
                "get_charter",
                "Every charter version, oldest first.",
                "operations",
                ok(200, "The versions", obj({"versions": array(b64("signed charter"))})),
                params=(OPERATION_ID,),
                errors=(403, 404),
            ),
            "post": operation(
                "post_charter",
                "A coordinator publishes the next charter version.",
                "operations",
                ok(201, "Published", charter_ok),
                params=(OPERATION_ID,),
                body=charter,
                errors=(403, 404, 409),
            ),
        },
        f"{API}/operations/{{operation_id}}/phase": {
            "post": operation(
                "post_phase",
                "A coordinator moves the operation to a later phase.",
                "operations",
                ok(200, "Moved", obj({"phase": {"enum": PHASES}})),
                params=(OPERATION_ID,),
                body=body_obj({"phase": {"enum": PHASES}}),
                errors=(403, 404, 409),
            )
        },
    }


def area_paths(settings: Settings) -> dict[str, Schema]:
    envelope = b64("a signed, encrypted message envelope")
    return {
        f"{AREA}/key-packages": {
            "post": operation(
                "post_key_package",
                "A device asks to join an area.",
                "areas",
                ok(201, "Stored", obj({"seq": SEQ})),
                params=AREA_PARAMS,
                body=body_obj({"key_package": b64("signed key package")}),
                errors=(403, 404),
            ),
            "get": operation(
                "get_key_packages",
                "Pending key packages, for members who admit devices.",
                "areas",
                ok(200, "The packages", obj({"key_packages": array(b64("package"))})),
                params=AREA_PARAMS,
                errors=(403, 404),
            ),
        },
        f"{AREA}/commits": {
            "post": operation(
                "post_commit",
                "Store the commit to the area's next epoch.",
                "areas",
                ok(201, "Stored", obj({"epoch": integer("", minimum=0), "seq": SEQ})),
                params=AREA_PARAMS,
                body=body_obj({"commit": b64("signed commit")}),
                errors=(403, 404, 409),
            ),
            "get": operation(
                "get_commits",
                "Commits after an epoch, oldest first.",
                "areas",
                ok(200, "The commits", obj({"commits": array(b64("signed commit"))})),
                params=(
                    *AREA_PARAMS,
                    query_param(
                        "after_epoch",
                        integer(
                            "only commits of later epochs; -1 for all",
                            minimum=-1,
                            maximum=MAX_INDEX,
                            default=-1,
                        ),
                    ),
                ),
                errors=(403, 404),
            ),
        },
        f"{AREA}/messages": {
            "post": operation(
                "post_message",
                "Store one envelope; its message id makes a retry idempotent.",
                "areas",
                ok(201, "Stored (or already stored with these bytes)", obj({"seq": SEQ})),
                params=AREA_PARAMS,
                body=body_obj({"envelope": envelope}),
                errors=(403, 404, 409),
            )
        },
        f"{AREA}/messages/batch": {
            "post": operation(
                "post_batch",
                "Store a batch of envelopes, all or nothing.",
                "areas",
                ok(201, "Stored, one number per envelope in order", obj({"seqs": array(SEQ)})),
                params=AREA_PARAMS,
                body=body_obj(
                    {
                        "envelopes": array(
                            envelope,
                            minItems=1,
                            maxItems=settings.max_batch,
                            description="a larger batch is refused whole: 413 payload_too_large",
                        )
                    }
                ),
                errors=(403, 404, 409),
            )
        },
        f"{AREA}/events": {
            "get": operation(
                "get_events",
                "An area's entries after a sequence number, in order.",
                "areas",
                ok(200, "The entries", obj({"events": array(ref("Event"))})),
                params=(
                    *AREA_PARAMS,
                    query_param(
                        "after",
                        integer(
                            "last number already seen", minimum=0, maximum=MAX_INDEX, default=0
                        ),
                    ),
                    query_param(
                        "limit",
                        integer("most entries to return", minimum=1, maximum=5000, default=500),
                    ),
                ),
                errors=(403, 404),
            )
        },
        f"{API}/sync": {
            "get": operation(
                "get_sync",
                "Everything new in all of the device's areas since a cursor.",
                "areas",
                ok(200, "A page of entries", ref("SyncPage")),
                params=(
                    query_param("cursor", b64("a cursor from an earlier page; empty to start")),
                    query_param(
                        "limit",
                        integer("most entries to return", minimum=1, maximum=5000, default=1000),
                    ),
                ),
            )
        },
        f"{API}/stream": {
            "get": operation(
                "stream",
                "Upgrade to a WebSocket that delivers the device's new entries, resumable "
                "from a cursor. Each message is a JSON object: "
                '{"type": "event", "event": Event, "cursor": str} for an entry, '
                '{"type": "idle", "cursor": str} when caught up, and '
                '{"type": "error", "error": {...}} before the server closes a revoked or '
                "expired session. Reconnect with the last cursor processed.",
                "areas",
                {"101": {"description": "Switching Protocols: the WebSocket stream"}},
                params=(query_param("cursor", b64("the last cursor processed; empty to start")),),
            )
        },
    }


def blob_paths(settings: Settings) -> dict[str, Schema]:
    blob_id = path_param("blob_id", UUID)
    octets = {"application/octet-stream": {"schema": {}}}
    blob_headers = {
        "ETag": header("the ciphertext's SHA-256 as quoted base64url", required=True),
        "Accept-Ranges": header("bytes", required=True),
    }
    return {
        f"{AREA}/blobs": {
            "post": operation(
                "post_blob",
                "Declare an attachment blob (ciphertext) of a size and SHA-256; upload follows.",
                "blobs",
                ok(201, "Declared", obj({"blob_id": UUID, "received": {"const": 0}})),
                params=AREA_PARAMS,
                body=body_obj(
                    {
                        "size": integer(
                            f"ciphertext bytes; above {settings.max_blob_bytes} answers 413",
                            minimum=1,
                        ),
                        "sha256": b64("SHA-256 of the ciphertext", minLength=43, maxLength=43),
                    }
                ),
                errors=(403, 404),
            )
        },
        f"{API}/blobs/{{blob_id}}": {
            "put": {
                **operation(
                    "put_blob_chunk",
                    "Upload the chunk at offset == received; resending stored bytes is an "
                    "idempotent retry. Every chunk but the last holds at least 64 KiB.",
                    "blobs",
                    ok(200, "Progress", ref("BlobProgress")),
                    params=(
                        blob_id,
                        query_param(
                            "offset",
                            integer("byte offset of the chunk", minimum=0, maximum=MAX_INDEX),
                            required=True,
                        ),
                    ),
                    errors=(400, 403, 404, 409, 413),
                ),
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/octet-stream": {
                            "schema": {
                                "type": "string",
                                "format": "binary",
                                "minLength": 1,
                                "maxLength": settings.max_blob_chunk_bytes,
                            }
                        }
                    },
                },
            },
            "get": operation(
                "get_blob",
                "A blob's metadata and upload progress.",
                "blobs",
                ok(200, "The blob", ref("Blob")),
                params=(blob_id,),
                errors=(403, 404),
            ),
        },
        f"{API}/blobs/{{blob_id}}/data": {
            "get": operation(
                "get_blob_data",
                "Download a complete blob, whole or one byte range.",
                "blobs",
                {
                    "200": {
                        "description": "The whole blob",
                        "headers": blob_headers,
                        "content": octets,
                    },
                    "206": {
                        "description": "The requested range",
                        "headers": {
                            **blob_headers,
                            "Content-Range": header("bytes first-last/size", required=True),
                        },
                        "content": octets,
                    },
                },
                params=(
                    blob_id,
                    {
                        "name": "Range",
                        "in": "header",
                        "required": False,
                        "schema": text(
                            "one range: bytes=first-last, bytes=first- or bytes=-n",
                            pattern="^bytes=[0-9]{0,18}-[0-9]{0,18}$",
                        ),
                    },
                ),
                errors=(400, 403, 404, 409, 416),
            )
        },
    }


def receipt_paths() -> dict[str, Schema]:
    return {
        f"{API}/receipts": {
            "post": operation(
                "post_receipt",
                "Store a signed read or ack receipt for a message.",
                "receipts",
                {
                    **ok(201, "Stored", ref("Receipt")),
                    **ok(200, "Already stored: the stored receipt", ref("Receipt")),
                },
                body=body_obj({"receipt": b64("the signed receipt statement")}),
                errors=(403, 404),
            )
        },
        f"{AREA}/messages/{{message_id}}/receipts": {
            "get": operation(
                "get_receipts",
                "For a coordinator: per organisation, who has read and acknowledged a message.",
                "receipts",
                ok(200, "The receipt status", ref("ReceiptStatus")),
                params=(*AREA_PARAMS, path_param("message_id", UUID)),
                errors=(400, 403, 404),
            )
        },
    }


def audit_paths() -> dict[str, Schema]:
    index = integer("", minimum=0, maximum=MAX_INDEX)
    proof = array(b64("SHA-256 node hash"))
    return {
        f"{API}/audit/checkpoint": {
            "get": operation(
                "get_checkpoint",
                "The signed checkpoint of the whole log.",
                "audit",
                ok(200, "The checkpoint", ref("Checkpoint")),
                errors=(503,),
            )
        },
        f"{API}/audit/checkpoints/{{size}}": {
            "get": operation(
                "get_checkpoint_at",
                "The stored checkpoint of exactly this size.",
                "audit",
                ok(200, "The checkpoint", ref("Checkpoint")),
                params=(path_param("size", integer("log size", minimum=0, maximum=MAX_INDEX)),),
                errors=(400, 404),
            )
        },
        f"{API}/audit/entries": {
            "get": operation(
                "get_entries",
                "Entries start to end (exclusive, at most 1000), cut at the log's end.",
                "audit",
                ok(200, "The entries", ref("AuditEntries")),
                params=(
                    query_param("start", {**index, "default": 0}),
                    query_param(
                        "end", integer("default start + 1000", minimum=0, maximum=MAX_INDEX + 1000)
                    ),
                ),
            )
        },
        f"{API}/audit/proof/inclusion": {
            "get": operation(
                "get_inclusion_proof",
                "Proof that leaf index is in the tree of size leaves.",
                "audit",
                ok(200, "The proof", obj({"index": index, "size": index, "proof": proof})),
                params=(
                    query_param("index", index, required=True),
                    query_param("size", {**index, "minimum": 1}, required=True),
                ),
                errors=(503,),
            )
        },
        f"{API}/audit/declarations": {
            "post": operation(
                "post_declaration",
                "Record a client's declaration of an action on decrypted content (e.g. an "
                "export with personal data) as a client-declaration audit entry.",
                "audit",
                ok(201, "Recorded", obj({"index": index})),
                body=body_obj(
                    {
                        "action": {"enum": ["export"], "description": "what the client did"},
                        "operation_id": ID,
                        "records": integer("how many records", minimum=0, maximum=10**9),
                        "include_personal": {"type": "boolean"},
                    }
                ),
                errors=(403, 404),
            )
        },
        f"{API}/audit/proof/consistency": {
            "get": operation(
                "get_consistency_proof",
                "Proof that the tree of old leaves is a prefix of the tree of new leaves.",
                "audit",
                ok(200, "The proof", obj({"old": index, "new": index, "proof": proof})),
                params=(
                    query_param("old", index, required=True),
                    query_param("new", index, required=True),
                ),
                errors=(503,),
            )
        },
    }


# -- shared schemas ---------------------------------------------------------------------
def schemas() -> dict[str, Schema]:
    operation_fields = {
        "operation_id": ID,
        "code": text("short code, e.g. STOP V"),
        "name": text("operation name"),
        "phase": {"enum": PHASES},
        "starts_at": TIME,
        "ends_at": TIME,
        "charter_version": integer("", minimum=1),
        "coordinator_org": ID,
        "role": text("the device organisation's role in the charter"),
        "retention_days": integer("", minimum=1, maximum=3650),
    }
    area_state = obj(
        {
            "area": AREA_NAME,
            "epoch": nullable(integer("current epoch; null before the area is created", minimum=0)),
            "last_seq": integer("number of the area's newest entry", minimum=0),
        }
    )
    device_times = {"type": "object", "additionalProperties": TIME}
    return {
        "Error": error_schema(),
        "Instance": obj(
            {
                "instance_id": ID,
                "name": text("instance name"),
                "log_key": b64("Ed25519 public key that signs audit checkpoints"),
                "log_key_fingerprint": text("six groups of five digits"),
            }
        ),
        "Organisation": obj(
            {
                "org_id": ID,
                "name": text(""),
                "kind": text("e.g. customs-administration"),
                "root_key": nullable(b64("Ed25519 root public key; null before enrolment")),
                "fingerprint": nullable(text("root key fingerprint")),
            }
        ),
        "Device": obj(
            {
                "device_id": ID,
                "org_id": ID,
                "user_id": ID,
                "device_certificate": b64("signed device certificate"),
                "user_certificate": b64("signed user certificate"),
                "revoked": {"type": "boolean"},
            }
        ),
        "Operation": obj(operation_fields),
        "OperationDetail": obj({**operation_fields, "areas": array(area_state)}),
        "Event": obj(
            {
                "operation_id": ID,
                "area": AREA_NAME,
                "seq": SEQ,
                "kind": {"enum": ["message", "commit", "key-package", "receipt"]},
                "device_id": ID,
                "epoch": nullable(integer("epoch of a message or commit", minimum=0)),
                "message_id": nullable(UUID),
                "body": b64("the stored envelope, commit, key package or receipt"),
                "created_at": TIME,
            }
        ),
        "SyncPage": obj(
            {
                "events": array(ref("Event")),
                "cursor": b64("pass back to continue"),
                "more": {"type": "boolean", "description": "the limit was reached"},
            }
        ),
        "Blob": obj(
            {
                "blob_id": UUID,
                "operation_id": ID,
                "area": AREA_NAME,
                "size": integer("declared ciphertext size", minimum=1),
                "sha256": b64("declared SHA-256 of the ciphertext"),
                "received": integer("bytes stored so far", minimum=0),
                "complete": {"type": "boolean"},
            }
        ),
        "BlobProgress": obj(
            {
                "blob_id": UUID,
                "received": integer("bytes stored so far; resume here", minimum=0),
                "complete": {"type": "boolean"},
            }
        ),
        "Receipt": obj(
            {
                "operation_id": ID,
                "area": AREA_NAME,
                "message_id": UUID,
                "device_id": ID,
                "org_id": ID,
                "kind": {"enum": ["read", "ack"]},
                "signed_at": TIME,
                "received_at": TIME,
                "receipt": b64("the signed statement"),
                "created": {"type": "boolean", "description": "false when it repeats a stored one"},
            }
        ),
        "ReceiptStatus": obj(
            {
                "operation_id": ID,
                "area": AREA_NAME,
                "message_id": UUID,
                "sender": ID,
                "requires_ack": {"type": "boolean"},
                "organisations": array(
                    obj(
                        {
                            "org_id": ID,
                            "role": text(""),
                            "members": array(ID, "the organisation's devices in the area's roster"),
                            "read": array(ID, "devices that have read (or acknowledged)"),
                            "acked": array(ID, "devices that have acknowledged"),
                            "read_at": device_times,
                            "acked_at": device_times,
                        }
                    )
                ),
                "pending_ack_orgs": array(ID, "organisations without an acknowledgement"),
            }
        ),
        "Checkpoint": obj(
            {
                "log_id": ID,
                "size": integer("", minimum=0),
                "root": b64("Merkle tree root (RFC 9162)"),
                "timestamp": TIME,
                "checkpoint": b64("the signed checkpoint encoding"),
                "log_key": b64("the instance's log key"),
            }
        ),
        "AuditEntries": obj(
            {
                "size": integer("the log's size", minimum=0),
                "entries": array(
                    obj(
                        {
                            "index": integer("", minimum=0),
                            "entry": {
                                "type": "object",
                                "description": "metadata only, never content",
                            },
                            "leaf_hash": b64("RFC 9162 leaf hash"),
                        }
                    )
                ),
            }
        ),
    }


@cache
def build_document(settings: Settings) -> Schema:
    """The OpenAPI document for a server running with ``settings`` (shared: do not mutate)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "OpSeal",
            "version": "1",
            "description": (
                "End-to-end encrypted closed-user-group exchange. The server stores, orders, "
                "routes and audits ciphertext and metadata. Bytes are unpadded base64url. "
                'Errors are {"error": {"code", "message", "details"}}; an unknown path '
                "answers 404 not_found and a known path with another method 405 "
                "method_not_allowed. Every response carries an X-Request-Id header."
            ),
        },
        "security": [{"bearerAuth": []}],
        "tags": [
            {"name": name}
            for name in (
                "identity",
                "operations",
                "areas",
                "blobs",
                "receipts",
                "audit",
                "ops",
                "meta",
            )
        ],
        "paths": {
            **ops_paths(),
            **identity_paths(),
            **operation_paths(),
            **area_paths(settings),
            **blob_paths(settings),
            **receipt_paths(),
            **audit_paths(),
        },
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "token from POST /api/v1/auth/login",
                }
            },
            "schemas": schemas(),
            "responses": {name: error_response(status) for status, (name, _, _) in ERRORS.items()},
        },
    }
