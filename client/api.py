"""``ApiClient``: one method per server endpoint, every request through one transport method.

It speaks the wire format (JSON, base64url bytes) and raises typed exceptions; it does no
cryptographic validation — that is the job of the higher-level :class:`opseal.client.Client`.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any, TypeVar, cast

import msgspec

from opseal.crypto.encoding import b64d, b64e
from opseal.crypto.errors import CryptoError
from opseal.crypto.keys import SigningKey
from opseal.crypto.statements import login_message
from opseal.wire import audit, blobs, identity
from opseal.wire import operations as ops
from opseal.wire.endpoints import by_name
from opseal.wire.stream import StreamMessage

from .answers import decode_answer
from .errors import MalformedAnswerError, TransportError, error_for
from .transport import AiohttpTransport, HttpRequest, HttpResponse, Transport

__all__ = ["ApiClient"]

T = TypeVar("T")
JSON = {"Content-Type": "application/json"}
STREAM = cast(type[StreamMessage], StreamMessage)
"""The stream's tagged union, typed as the class ``decode_answer`` expects."""


class ApiClient:
    """A session with one OpSeal server. Use as ``async with ApiClient(url) as api``.

    Every request goes through one :class:`~opseal.client.transport.Transport` (by default
    an :class:`~opseal.client.transport.AiohttpTransport`, made on entering); pass
    ``transport`` to talk to something else, such as an in-process fake server.
    """

    def __init__(
        self,
        base_url: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 60.0,
        transport: Transport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token: str | None = None
        self._ssl, self._timeout = ssl_context, timeout
        self._transport = transport

    async def __aenter__(self) -> ApiClient:
        if self._transport is None:
            self._transport = AiohttpTransport(ssl_context=self._ssl, timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._transport is not None:
            await self._transport.close()
            self._transport = None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> HttpRequest:
        query = {k: _text(v) for k, v in (params or {}).items()}
        return HttpRequest(
            method, self.base_url + path, query, {**self._headers(), **(headers or {})}, body
        )

    async def send(self, request: HttpRequest) -> HttpResponse:
        """The one transport method: every request of this client goes through here."""
        assert self._transport is not None, "use ApiClient as an async context manager"
        return await self._transport.handle(request)

    async def call(
        self,
        name: str,
        answer: type[T],
        *,
        path: Mapping[str, str] | None = None,
        body: msgspec.Struct | None = None,
        params: Mapping[str, Any] | None = None,
        data: bytes | None = None,
    ) -> T:
        """Call endpoint ``name`` of the route table (:data:`opseal.wire.endpoints.ENDPOINTS`);
        its answer decoded as the table's type for the status (``answer``). A refusal raises its
        typed error; an answer that is not the API's raises :class:`MalformedAnswerError`."""
        endpoint = by_name(name)
        where = f"{endpoint.method} {endpoint.path}"
        headers, raw = {}, None
        if body is not None:
            headers, raw = JSON, msgspec.json.encode(body)
        elif data is not None:
            headers, raw = {"Content-Type": "application/octet-stream"}, data
        url = endpoint.path.format(**(path or {}))
        request = self._request(endpoint.method, url, params=params, headers=headers, body=raw)
        response = await self.send(request)
        if response.status >= 400:
            raise _refusal(where, response)
        reply = endpoint.replies.get(response.status)
        if reply is None or reply.body is None:
            raise MalformedAnswerError(
                f"{where}: unexpected status {response.status}", status=response.status
            )
        assert reply.body is answer, f"{name} answers {reply.body}, not {answer}"
        return decode_answer(response.body, answer, where, response.status)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        data: bytes | None = None,
    ) -> Any:
        """An untyped request (for tools and tests reaching past the table): the answer's
        JSON as plain data; a refusal raises its typed error.

        ``data`` sends raw bytes as ``application/octet-stream`` instead of a JSON body.
        """
        headers, raw = {}, None
        if data is not None:
            headers, raw = {"Content-Type": "application/octet-stream"}, data
        elif json is not None:
            headers, raw = JSON, msgspec.json.encode(json)
        response = await self.send(
            self._request(method, path, params=params, headers=headers, body=raw)
        )
        if response.status >= 400:
            raise _refusal(f"{method} {path}", response)
        try:
            return msgspec.json.decode(response.body)
        except msgspec.DecodeError as exc:
            raise TransportError(f"{method} {path}: the server's answer is not JSON") from exc

    async def request_bytes(
        self, method: str, path: str, *, headers: dict[str, str] | None = None
    ) -> bytes:
        """Like :meth:`request`, for an answer of raw bytes; refusals raise the typed error."""
        response = await self.send(self._request(method, path, headers=headers))
        if response.status >= 400:
            raise _refusal(f"{method} {path}", response)
        return response.body

    # -- identity ----------------------------------------------------------------------
    async def instance(self) -> identity.Instance:
        return await self.call("get_instance", identity.Instance)

    async def enrol(
        self, code: str, user_cert: bytes, device_cert: bytes, root_key: bytes | None = None
    ) -> identity.Enrolled:
        body = identity.EnrolRequest(
            code=code,
            user_certificate=b64e(user_cert),
            device_certificate=b64e(device_cert),
            root_key=None if root_key is None else b64e(root_key),
        )
        return await self.call("enrol", identity.Enrolled, body=body)

    async def login(self, instance_id: str, device_id: str, key: SigningKey) -> str:
        """Challenge-response login; keeps and returns the bearer token."""
        request = identity.ChallengeRequest(device_id=device_id)
        challenge = await self.call("auth_challenge", identity.Challenge, body=request)
        value = b64d(challenge.challenge)
        signature = key.sign(login_message(instance_id, device_id, value))
        login = identity.LoginRequest(
            device_id=device_id, challenge=challenge.challenge, signature=b64e(signature)
        )
        answer = await self.call("auth_login", identity.Session, body=login)
        self.token = answer.token
        return answer.token

    async def logout(self) -> None:
        await self.call("auth_logout", identity.LoggedOut)
        self.token = None

    async def whoami(self) -> identity.WhoAmI:
        return await self.call("whoami", identity.WhoAmI)

    async def organisation(self, org_id: str) -> identity.Organisation:
        return await self.call("get_org", identity.Organisation, path={"org_id": org_id})

    async def register_user(self, org_id: str, cert: bytes) -> identity.UserRegistered:
        body = identity.Certificate(certificate=b64e(cert))
        return await self.call(
            "post_user", identity.UserRegistered, path={"org_id": org_id}, body=body
        )

    async def register_device(self, org_id: str, cert: bytes) -> identity.DeviceRegistered:
        body = identity.Certificate(certificate=b64e(cert))
        return await self.call(
            "post_device", identity.DeviceRegistered, path={"org_id": org_id}, body=body
        )

    async def revoke(self, org_id: str, statement: bytes) -> identity.Revoked:
        body = identity.Revocation(statement=b64e(statement))
        return await self.call(
            "post_revocation", identity.Revoked, path={"org_id": org_id}, body=body
        )

    async def issue_enrolment_code(
        self, org_id: str, code_hash: bytes, expires_at: int, signature: bytes
    ) -> identity.EnrolmentCodeIssued:
        """Store a code the organisation's root granted (focal point only)."""
        body = identity.EnrolmentCodeRequest(
            code_hash=b64e(code_hash), expires_at=expires_at, signature=b64e(signature)
        )
        return await self.call(
            "post_enrolment_code", identity.EnrolmentCodeIssued, path={"org_id": org_id}, body=body
        )

    async def revocations(self, after: int = 0, limit: int = 1000) -> identity.Revocations:
        """A page of signed revocations recorded after the cursor ``after``."""
        params = {"after": after, "limit": limit}
        return await self.call("get_revocations", identity.Revocations, params=params)

    async def device(self, device_id: str) -> identity.Device:
        return await self.call("get_device", identity.Device, path={"device_id": device_id})

    # -- operations --------------------------------------------------------------------
    async def create_operation(
        self, charter: bytes, retention_days: int = 365
    ) -> ops.CharterPublished:
        body = ops.CreateOperation(charter=b64e(charter), retention_days=retention_days)
        return await self.call("post_operation", ops.CharterPublished, body=body)

    async def operations(self) -> list[ops.Operation]:
        return (await self.call("get_operations", ops.Operations)).operations

    async def operation(self, operation_id: str) -> ops.OperationDetail:
        return await self.call(
            "get_operation", ops.OperationDetail, path={"operation_id": operation_id}
        )

    async def charter_versions(self, operation_id: str) -> list[bytes]:
        path = {"operation_id": operation_id}
        body = await self.call("get_charter", ops.CharterHistory, path=path)
        return _bytes(body.versions)

    async def publish_charter(self, operation_id: str, charter: bytes) -> ops.CharterPublished:
        body = ops.CharterRequest(charter=b64e(charter))
        path = {"operation_id": operation_id}
        return await self.call("post_charter", ops.CharterPublished, path=path, body=body)

    async def set_phase(self, operation_id: str, phase: str) -> ops.PhaseSet:
        body = ops.PhaseRequest(phase=cast(Any, phase))  # the server checks the name
        path = {"operation_id": operation_id}
        return await self.call("post_phase", ops.PhaseSet, path=path, body=body)

    # -- areas -------------------------------------------------------------------------
    async def post_key_package(self, operation_id: str, area: str, package: bytes) -> int:
        body = ops.KeyPackageRequest(key_package=b64e(package))
        path = {"operation_id": operation_id, "area": area}
        return (await self.call("post_key_package", ops.Stored, path=path, body=body)).seq

    async def key_packages(self, operation_id: str, area: str) -> list[bytes]:
        path = {"operation_id": operation_id, "area": area}
        body = await self.call("get_key_packages", ops.KeyPackages, path=path)
        return _bytes(body.key_packages)

    async def post_commit(self, operation_id: str, area: str, commit: bytes) -> ops.CommitStored:
        body = ops.CommitRequest(commit=b64e(commit))
        path = {"operation_id": operation_id, "area": area}
        return await self.call("post_commit", ops.CommitStored, path=path, body=body)

    async def commits(self, operation_id: str, area: str, after_epoch: int = -1) -> list[bytes]:
        path = {"operation_id": operation_id, "area": area}
        params = {"after_epoch": after_epoch}
        body = await self.call("get_commits", ops.Commits, path=path, params=params)
        return _bytes(body.commits)

    async def post_message(self, operation_id: str, area: str, envelope: bytes) -> int:
        body = ops.MessageRequest(envelope=b64e(envelope))
        path = {"operation_id": operation_id, "area": area}
        return (await self.call("post_message", ops.Stored, path=path, body=body)).seq

    async def post_batch(self, operation_id: str, area: str, envelopes: list[bytes]) -> list[int]:
        body = ops.MessageBatch(envelopes=[b64e(e) for e in envelopes])
        path = {"operation_id": operation_id, "area": area}
        answer = await self.call("post_batch", ops.BatchStored, path=path, body=body)
        if len(answer.seqs) != len(envelopes):
            raise MalformedAnswerError(
                f"POST {by_name('post_batch').path}: {len(answer.seqs)} numbers for "
                f"{len(envelopes)} envelopes",
                status=201,
                details={"field": "seqs"},
            )
        return answer.seqs

    async def events(
        self, operation_id: str, area: str, after: int = 0, limit: int = 500
    ) -> list[ops.Event]:
        path = {"operation_id": operation_id, "area": area}
        params = {"after": after, "limit": limit}
        return (await self.call("get_events", ops.Events, path=path, params=params)).events

    async def sync(self, cursor: str = "", limit: int = 1000) -> ops.SyncPage:
        params = {"cursor": cursor, "limit": limit}
        return await self.call("get_sync", ops.SyncPage, params=params)

    # -- audit -------------------------------------------------------------------------
    async def audit_checkpoint(self, size: int | None = None) -> audit.Checkpoint:
        """The latest signed audit checkpoint, or the stored one of exactly ``size`` entries."""
        if size is None:
            return await self.call("get_checkpoint", audit.Checkpoint)
        return await self.call("get_checkpoint_at", audit.Checkpoint, path={"size": str(size)})

    async def audit_entries(self, start: int, end: int) -> list[audit.AuditEntry]:
        """Audit entries ``start`` to ``end`` (exclusive; at most 1000, cut at the log's end)."""
        params = {"start": start, "end": end}
        return (await self.call("get_entries", audit.AuditEntries, params=params)).entries

    async def declare(
        self, action: str, operation_id: str, records: int, *, include_personal: bool
    ) -> int:
        """Declare an action on decrypted content (e.g. an export with personal data); the
        server appends a ``client-declaration`` audit entry and returns its index."""
        body = audit.Declaration(
            action=cast(Any, action),  # the server checks the action
            operation_id=operation_id,
            records=records,
            include_personal=include_personal,
        )
        return (await self.call("post_declaration", audit.Declared, body=body)).index

    async def audit_inclusion_proof(self, index: int, size: int) -> list[bytes]:
        params = {"index": index, "size": size}
        body = await self.call("get_inclusion_proof", audit.InclusionProof, params=params)
        return _bytes(body.proof)

    async def audit_consistency_proof(self, old: int, new: int) -> list[bytes]:
        params = {"old": old, "new": new}
        body = await self.call("get_consistency_proof", audit.ConsistencyProof, params=params)
        return _bytes(body.proof)

    async def stream(self, cursor: str = "") -> AsyncIterator[StreamMessage]:
        """Follow the WebSocket stream from ``cursor``; yields each message the server sends,
        decoded (a malformed one raises :class:`MalformedAnswerError` and ends the stream)."""
        assert self._transport is not None, "use ApiClient as an async context manager"
        endpoint = by_name("stream")
        url = self.base_url.replace("http", "ws", 1) + endpoint.path
        request = HttpRequest("GET", url, {"cursor": cursor}, self._headers())
        async for frame in self._transport.stream(request):
            yield decode_answer(frame.encode(), STREAM, "stream message", 101)

    # -- blobs and receipts --
    async def create_blob(
        self, operation_id: str, area: str, size: int, sha256: bytes
    ) -> blobs.BlobCreated:
        """Declare an attachment blob of ``size`` bytes of ciphertext hashing to ``sha256``."""
        body = blobs.BlobRequest(size=size, sha256=b64e(sha256))
        path = {"operation_id": operation_id, "area": area}
        return await self.call("post_blob", blobs.BlobCreated, path=path, body=body)

    async def put_blob_chunk(self, blob_id: str, offset: int, data: bytes) -> blobs.BlobProgress:
        """Upload the chunk starting at ``offset`` (the blob's ``received`` so far)."""
        return await self.call(
            "put_blob_chunk",
            blobs.BlobProgress,
            path={"blob_id": blob_id},
            params={"offset": offset},
            data=data,
        )

    async def blob(self, blob_id: str) -> blobs.Blob:
        return await self.call("get_blob", blobs.Blob, path={"blob_id": blob_id})

    async def download_blob(self, blob_id: str, start: int = 0, end: int | None = None) -> bytes:
        """The blob's bytes ``start`` to ``end - 1`` (``end`` exclusive, like a slice)."""
        if end is not None and end <= start:
            return b""
        headers = {}
        if start or end is not None:
            headers["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        path = by_name("get_blob_data").path.format(blob_id=blob_id)
        return await self.request_bytes("GET", path, headers=headers)

    async def post_receipt(self, receipt: bytes) -> blobs.Receipt:
        """Post a signed read or ack receipt; ``created`` is false for a repeat."""
        body = blobs.ReceiptRequest(receipt=b64e(receipt))
        return await self.call("post_receipt", blobs.Receipt, body=body)

    async def receipts(
        self, operation_id: str, area: str, sender: str, message_id: str
    ) -> blobs.ReceiptStatus:
        """Who has read and acknowledged the sender's message, per organisation (coordinators
        only)."""
        path = {"operation_id": operation_id, "area": area, "message_id": message_id}
        params = {"sender": sender}
        return await self.call("get_receipts", blobs.ReceiptStatus, path=path, params=params)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _bytes(texts: list[str]) -> list[bytes]:
    """Decoded base64url fields (already checked canonical by :func:`decode_answer`)."""
    try:
        return [b64d(t) for t in texts]
    except CryptoError as exc:  # longer than any byte string the client accepts
        raise MalformedAnswerError(str(exc), status=200) from exc


def _refusal(where: str, response: HttpResponse) -> Exception:
    """The typed error for a refusal; a body that is not JSON is a transport failure (a proxy's
    error page), as it always was."""
    try:
        body = msgspec.json.decode(response.body)
    except msgspec.DecodeError:
        return TransportError(f"{where}: the server's answer is not JSON")
    return error_for(response.status, body)
