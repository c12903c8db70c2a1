"""The route table: every endpoint's method, path, request and response types, statuses
and errors, written once.

The server registers its handlers against these entries (``opseal.server.http.routing``),
:mod:`opseal.wire.openapi` builds the OpenAPI document from them, and a client can find the
answer type of any endpoint here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import audit, blobs, identity, operations, ops
from .scalars import AREA_NAME, ASSET, ID, INDEX, UUID

__all__ = ["ENDPOINTS", "PATH_PARAMS", "Endpoint", "Limits", "Reply", "by_name"]

API = "/api/v1"
AREA = f"{API}/operations/{{operation_id}}/areas/{{area}}"
JSON = "application/json"
OCTETS = "application/octet-stream"

PATH_PARAMS: dict[str, Any] = {
    "operation_id": ID,
    "area": AREA_NAME,
    "org_id": ID,
    "device_id": ID,
    "message_id": UUID,
    "blob_id": UUID,
    "size": INDEX,
    "script": ASSET,
    "style": ASSET,
}
"""The type of every path parameter, by name."""


@dataclass(frozen=True)
class Limits:
    """The limits an operator configures; the document states the ones the server runs with."""

    max_batch: int = 500
    max_blob_bytes: int = 2 * 1024 * 1024 * 1024
    max_blob_chunk_bytes: int = 8 * 1024 * 1024


@dataclass(frozen=True)
class Reply:
    """One documented answer: a JSON wire type, or another media type with its schema."""

    description: str
    body: Any = None
    media: str = JSON
    schema: Mapping[str, Any] | None = None
    headers: Mapping[str, tuple[str, bool]] = field(default_factory=dict)
    """Response headers: name -> (description, required)."""


@dataclass(frozen=True)
class Endpoint:
    """One operation of the API."""

    name: str
    method: str
    path: str
    summary: str
    tag: str
    replies: Mapping[int, Reply]
    body: Any = None
    query: Any = None
    errors: tuple[int, ...] = ()
    auth: bool = True
    raw_body: bool = False
    """The body is raw bytes (``application/octet-stream``), not JSON."""
    headers: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """Request headers: name -> (description, pattern)."""
    limits: Callable[[dict[str, Any], Limits], None] | None = None
    """Writes the configured limits into the operation's document."""

    @property
    def path_params(self) -> list[str]:
        return [name for name in PATH_PARAMS if f"{{{name}}}" in self.path]


def _batch_limit(op: dict[str, Any], limits: Limits) -> None:
    schema = op["requestBody"]["content"][JSON]["schema"]
    schema["properties"]["envelopes"]["maxItems"] = limits.max_batch


def _blob_limit(op: dict[str, Any], limits: Limits) -> None:
    size = op["requestBody"]["content"][JSON]["schema"]["properties"]["size"]
    size["description"] = f"ciphertext bytes; above {limits.max_blob_bytes} answers 413"


def _chunk_limit(op: dict[str, Any], limits: Limits) -> None:
    schema = {"type": "string", "format": "binary", "minLength": 1}
    schema["maxLength"] = limits.max_blob_chunk_bytes
    op["requestBody"] = {"required": True, "content": {OCTETS: {"schema": schema}}}


def _ok(status: int, description: str, body: Any) -> dict[int, Reply]:
    return {status: Reply(description, body)}


BLOB_HEADERS = {
    "ETag": ("the ciphertext's SHA-256 as quoted base64url", True),
    "Accept-Ranges": ("bytes", True),
}

OPS = [
    Endpoint("healthz", "GET", "/healthz", "The process is up.", "ops",
             _ok(200, "Alive", ops.Alive), auth=False),
    Endpoint("readyz", "GET", "/readyz", "The database answers: ready to serve.", "ops",
             {200: Reply("Ready", ops.Ready),
              503: Reply("The database does not answer, or the node is draining",
                         ops.NotReady)}, auth=False),
    Endpoint("metrics", "GET", "/metrics",
             "Prometheus metrics in the text exposition format. With the setting metrics_token, "
             "only for `Authorization: Bearer <metrics_token>` (401 otherwise); without it, only "
             "for a loopback peer with no forwarding header (403 otherwise).",
             "ops", {200: Reply("Metrics", media="text/plain",
                                schema={"type": "string", "description": ""})},
             errors=(401, 403), auth=False),
    Endpoint("openapi", "GET", f"{API}/openapi.json", "This document.", "meta",
             {200: Reply("The OpenAPI 3.1 document", schema={"type": "object"})}, auth=False),
]  # fmt: skip

WEB_HEADERS = {
    "Content-Security-Policy": ("the app's policy: own origin only, no inline script", True),
    "X-Content-Type-Options": ("nosniff", True),
}


def _asset(kind: str, param: str, media: str) -> Endpoint:
    return Endpoint(f"web_{kind}", "GET", f"/assets/{{{param}}}.{kind}",
                    f"A {kind} file of the web app, named by its content hash (cached for good).",
                    "web", {200: Reply("The file", media=media, schema={"type": "string"},
                                       headers=WEB_HEADERS)},
                    errors=(404,), auth=False)  # fmt: skip


WEB = [
    Endpoint("web_index", "GET", "/",
             "The web app's page, its script and style pinned by SRI hashes; 404 when the "
             "installed package holds no built app.", "web",
             {200: Reply("The page", media="text/html", schema={"type": "string"},
                         headers=WEB_HEADERS)}, errors=(404,), auth=False),
    Endpoint("web_config", "GET", "/config.json",
             "Where the web app finds the API: `api` is empty for this origin.", "web",
             _ok(200, "The app's configuration", ops.WebConfig), auth=False),
    _asset("js", "script", "text/javascript"),
    _asset("css", "style", "text/css"),
]  # fmt: skip

IDENTITY = [
    Endpoint("get_instance", "GET", f"{API}/instance",
             "The instance's id, name and audit-log key.", "identity",
             _ok(200, "The instance", identity.Instance), auth=False),
    Endpoint("enrol", "POST", f"{API}/enrol",
             "Redeem a one-time enrolment code: register the organisation's root key "
             "(first enrolment only), a user and a device.", "identity",
             _ok(201, "Enrolled", identity.Enrolled), body=identity.EnrolRequest,
             errors=(401, 409), auth=False),
    Endpoint("auth_challenge", "POST", f"{API}/auth/challenge",
             "A one-time login challenge (issued whether or not the device exists).",
             "identity", _ok(200, "The challenge", identity.Challenge),
             body=identity.ChallengeRequest, auth=False),
    Endpoint("auth_login", "POST", f"{API}/auth/login",
             "Exchange a signed challenge for a short-lived bearer token.", "identity",
             _ok(200, "Logged in", identity.Session), body=identity.LoginRequest,
             errors=(401,), auth=False),
    Endpoint("auth_logout", "POST", f"{API}/auth/logout", "End this bearer token's session.",
             "identity", _ok(200, "Logged out", identity.LoggedOut)),
    Endpoint("whoami", "GET", f"{API}/whoami", "The authenticated device.", "identity",
             _ok(200, "The device", identity.WhoAmI)),
    Endpoint("get_org", "GET", f"{API}/orgs/{{org_id}}",
             "An organisation and its root key fingerprint.", "identity",
             _ok(200, "The organisation", identity.Organisation), errors=(404,)),
    Endpoint("post_user", "POST", f"{API}/orgs/{{org_id}}/users",
             "Register a user certificate signed by the organisation's root.", "identity",
             _ok(201, "Registered", identity.UserRegistered), body=identity.Certificate,
             errors=(403,)),
    Endpoint("post_device", "POST", f"{API}/orgs/{{org_id}}/devices",
             "Register a device certificate of a registered user.", "identity",
             _ok(201, "Registered", identity.DeviceRegistered), body=identity.Certificate,
             errors=(403, 404, 409)),
    Endpoint("post_revocation", "POST", f"{API}/orgs/{{org_id}}/revocations",
             "Record a signed revocation of a user or device key; ends its sessions.",
             "identity", _ok(201, "Revoked", identity.Revoked), body=identity.Revocation,
             errors=(403, 404)),
    Endpoint("post_enrolment_code", "POST", f"{API}/orgs/{{org_id}}/enrolment-codes",
             "The focal point issues a one-time enrolment code for its own organisation, "
             "granted by the organisation's root key; only the code's hash is stored.",
             "identity", _ok(201, "Issued", identity.EnrolmentCodeIssued),
             body=identity.EnrolmentCodeRequest, errors=(403, 404, 409)),
    Endpoint("get_revocations", "GET", f"{API}/revocations",
             "Every organisation's signed revocations, oldest first, after a cursor, with the "
             "certificates that prove them: clients verify and keep them.", "identity",
             _ok(200, "A page of revocations", identity.Revocations),
             query=identity.RevocationsQuery),
    Endpoint("get_device", "GET", f"{API}/devices/{{device_id}}",
             "A device's certificates and revocation state.", "identity",
             _ok(200, "The device", identity.Device), errors=(404,)),
]  # fmt: skip

OPERATIONS = [
    Endpoint("post_operation", "POST", f"{API}/operations",
             "A coordinator organisation creates an operation with charter version 1.",
             "operations", _ok(201, "Created", operations.CharterPublished),
             body=operations.CreateOperation, errors=(403, 409)),
    Endpoint("get_operations", "GET", f"{API}/operations",
             "Operations whose charter lists the device's organisation.", "operations",
             _ok(200, "The operations", operations.Operations)),
    Endpoint("get_operation", "GET", f"{API}/operations/{{operation_id}}",
             "An operation, with the areas the device's role reads.", "operations",
             _ok(200, "The operation", operations.OperationDetail), errors=(403, 404)),
    Endpoint("get_charter", "GET", f"{API}/operations/{{operation_id}}/charter",
             "Every charter version, oldest first.", "operations",
             _ok(200, "The versions", operations.CharterHistory), errors=(403, 404)),
    Endpoint("post_charter", "POST", f"{API}/operations/{{operation_id}}/charter",
             "A coordinator publishes the next charter version.", "operations",
             _ok(201, "Published", operations.CharterPublished),
             body=operations.CharterRequest, errors=(403, 404, 409)),
    Endpoint("post_phase", "POST", f"{API}/operations/{{operation_id}}/phase",
             "A coordinator moves the operation to a later phase.", "operations",
             _ok(200, "Moved", operations.PhaseSet), body=operations.PhaseRequest,
             errors=(403, 404, 409)),
]  # fmt: skip

AREAS = [
    Endpoint("post_key_package", "POST", f"{AREA}/key-packages",
             "A device asks to join an area.", "areas", _ok(201, "Stored", operations.Stored),
             body=operations.KeyPackageRequest, errors=(403, 404)),
    Endpoint("get_key_packages", "GET", f"{AREA}/key-packages",
             "Pending key packages, for members who admit devices.", "areas",
             _ok(200, "The packages", operations.KeyPackages), errors=(403, 404)),
    Endpoint("post_commit", "POST", f"{AREA}/commits",
             "Store the commit to the area's next epoch.", "areas",
             _ok(201, "Stored", operations.CommitStored), body=operations.CommitRequest,
             errors=(403, 404, 409)),
    Endpoint("get_commits", "GET", f"{AREA}/commits", "Commits after an epoch, oldest first.",
             "areas", _ok(200, "The commits", operations.Commits),
             query=operations.CommitsQuery, errors=(403, 404)),
    Endpoint("post_message", "POST", f"{AREA}/messages",
             "Store one envelope; its message id makes a retry idempotent.", "areas",
             _ok(201, "Stored (or already stored with these bytes)", operations.Stored),
             body=operations.MessageRequest, errors=(403, 404, 409)),
    Endpoint("post_batch", "POST", f"{AREA}/messages/batch",
             "Store a batch of envelopes, all or nothing.", "areas",
             _ok(201, "Stored, one number per envelope in order", operations.BatchStored),
             body=operations.MessageBatch, errors=(403, 404, 409), limits=_batch_limit),
    Endpoint("get_events", "GET", f"{AREA}/events",
             "An area's entries after a sequence number, in order.", "areas",
             _ok(200, "The entries", operations.Events), query=operations.EventsQuery,
             errors=(403, 404)),
    Endpoint("get_sync", "GET", f"{API}/sync",
             "Everything new in all of the device's areas since a cursor.", "areas",
             _ok(200, "A page of entries", operations.SyncPage), query=operations.SyncQuery),
    Endpoint("stream", "GET", f"{API}/stream",
             "Upgrade to a WebSocket that delivers the device's new entries, resumable "
             "from a cursor. Each message is a JSON object (components StreamEvent, "
             "StreamIdle, StreamError): "
             '{"type": "event", "event": Event, "cursor": str} for an entry, '
             '{"type": "idle", "cursor": str} when caught up, and '
             '{"type": "error", "error": {...}} before the server closes a revoked or '
             "expired session. Reconnect with the last cursor processed (a node that stops "
             "or drains closes the stream with 1012 and says so; a draining node answers a "
             "new stream 503). A browser, which cannot set the Authorization header, offers "
             "the subprotocols `opseal.v1` and `opseal.bearer.<token>` instead; the server "
             "answers `opseal.v1`.", "areas",
             {101: Reply("Switching Protocols: the WebSocket stream", media="")},
             query=operations.StreamQuery, errors=(503,)),
]  # fmt: skip

BLOBS = [
    Endpoint("post_blob", "POST", f"{AREA}/blobs",
             "Declare an attachment blob (ciphertext) of a size and SHA-256; upload follows.",
             "blobs", _ok(201, "Declared", blobs.BlobCreated), body=blobs.BlobRequest,
             errors=(403, 404), limits=_blob_limit),
    Endpoint("put_blob_chunk", "PUT", f"{API}/blobs/{{blob_id}}",
             "Upload the chunk at offset == received; resending stored bytes is an "
             "idempotent retry. Every chunk but the last holds at least 64 KiB.", "blobs",
             _ok(200, "Progress", blobs.BlobProgress), query=blobs.ChunkQuery,
             errors=(400, 403, 404, 409, 413), raw_body=True, limits=_chunk_limit),
    Endpoint("get_blob", "GET", f"{API}/blobs/{{blob_id}}",
             "A blob's metadata and upload progress.", "blobs",
             _ok(200, "The blob", blobs.Blob), errors=(403, 404)),
    Endpoint("get_blob_data", "GET", f"{API}/blobs/{{blob_id}}/data",
             "Download a complete blob, whole or one byte range.", "blobs",
             {200: Reply("The whole blob", media=OCTETS, schema={}, headers=BLOB_HEADERS),
              206: Reply("The requested range", media=OCTETS, schema={},
                         headers={**BLOB_HEADERS,
                                  "Content-Range": ("bytes first-last/size", True)})},
             errors=(400, 403, 404, 409, 416),
             headers={"Range": ("one range: bytes=first-last, bytes=first- or bytes=-n",
                                "^bytes=[0-9]{0,18}-[0-9]{0,18}$")}),
    Endpoint("post_receipt", "POST", f"{API}/receipts",
             "Store a signed read or ack receipt for a message.", "receipts",
             {201: Reply("Stored", blobs.Receipt),
              200: Reply("Already stored: the stored receipt", blobs.Receipt)},
             body=blobs.ReceiptRequest, errors=(403, 404)),
    Endpoint("get_receipts", "GET", f"{AREA}/messages/{{message_id}}/receipts",
             "For a coordinator: per organisation, who has read and acknowledged the message "
             "a sender posted under this id.",
             "receipts", _ok(200, "The receipt status", blobs.ReceiptStatus),
             query=blobs.ReceiptStatusQuery, errors=(400, 403, 404)),
]  # fmt: skip

AUDIT = [
    Endpoint("get_checkpoint", "GET", f"{API}/audit/checkpoint",
             "The signed checkpoint of the whole log.", "audit",
             _ok(200, "The checkpoint", audit.Checkpoint), errors=(503,)),
    Endpoint("get_checkpoint_at", "GET", f"{API}/audit/checkpoints/{{size}}",
             "The stored checkpoint of exactly this size.", "audit",
             _ok(200, "The checkpoint", audit.Checkpoint), errors=(400, 404)),
    Endpoint("get_entries", "GET", f"{API}/audit/entries",
             "Entries start to end (exclusive, at most 1000), cut at the log's end.", "audit",
             _ok(200, "The entries", audit.AuditEntries), query=audit.EntriesQuery),
    Endpoint("get_inclusion_proof", "GET", f"{API}/audit/proof/inclusion",
             "Proof that leaf index is in the tree of size leaves.", "audit",
             _ok(200, "The proof", audit.InclusionProof), query=audit.InclusionQuery,
             errors=(503,)),
    Endpoint("post_declaration", "POST", f"{API}/audit/declarations",
             "Record a client's declaration of an action on decrypted content (e.g. an "
             "export with personal data) as a client-declaration audit entry.", "audit",
             _ok(201, "Recorded", audit.Declared), body=audit.Declaration, errors=(403, 404)),
    Endpoint("get_consistency_proof", "GET", f"{API}/audit/proof/consistency",
             "Proof that the tree of old leaves is a prefix of the tree of new leaves.",
             "audit", _ok(200, "The proof", audit.ConsistencyProof),
             query=audit.ConsistencyQuery, errors=(503,)),
]  # fmt: skip

ENDPOINTS: tuple[Endpoint, ...] = (*OPS, *WEB, *IDENTITY, *OPERATIONS, *AREAS, *BLOBS, *AUDIT)
"""Every endpoint of the API, in the document's order."""

_BY_NAME = {endpoint.name: endpoint for endpoint in ENDPOINTS}


def by_name(name: str) -> Endpoint:
    """The endpoint whose operation id is ``name``."""
    return _BY_NAME[name]
