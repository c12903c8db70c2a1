"""``ApiClient``: one method per server endpoint, every request through one transport method.

It speaks the wire format (JSON, base64url bytes) and raises typed exceptions; it does no
cryptographic validation — that is the job of the higher-level :class:`opseal.client.Client`.
"""

from __future__ import annotations

import io
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from opseal.crypto.encoding import b64d, b64e
from opseal.crypto.keys import SigningKey
from opseal.crypto.statements import login_message

from .errors import TransportError, error_for

__all__ = ["ApiClient"]


class ApiClient:
    """A session with one OpSeal server. Use as ``async with ApiClient(url) as api``."""

    def __init__(
        self, base_url: str, *, ssl_context: ssl.SSLContext | None = None, timeout: float = 60.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token: str | None = None
        self._ssl = ssl_context
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ApiClient:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        data: bytes | None = None,
    ) -> Any:
        """The one transport method: send, decode JSON, raise the typed error on refusal.

        ``data`` sends raw bytes as ``application/octet-stream`` instead of a JSON body.
        """
        assert self._session is not None, "use ApiClient as an async context manager"
        headers = self._headers()
        if data is not None:
            headers["Content-Type"] = "application/octet-stream"
        try:
            async with self._session.request(
                method,
                self.base_url + path,
                json=json,
                data=None if data is None else io.BytesIO(data),  # large bytes block the loop
                params=params,
                headers=headers,
                ssl=self._ssl if self._ssl is not None else True,
            ) as response:
                body = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransportError(f"{method} {path}: {exc.__class__.__name__}: {exc}") from exc
        except ValueError as exc:
            raise TransportError(f"{method} {path}: the server's answer is not JSON") from exc
        if status >= 400:
            raise error_for(status, body)
        return body

    async def request_bytes(
        self, method: str, path: str, *, headers: dict[str, str] | None = None
    ) -> bytes:
        """Like :meth:`request`, for an answer of raw bytes; refusals raise the typed error."""
        assert self._session is not None, "use ApiClient as an async context manager"
        try:
            async with self._session.request(
                method,
                self.base_url + path,
                headers={**self._headers(), **(headers or {})},
                ssl=self._ssl if self._ssl is not None else True,
            ) as response:
                status = response.status
                if status >= 400:
                    body = await response.json(content_type=None)
                else:
                    return await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransportError(f"{method} {path}: {exc.__class__.__name__}: {exc}") from exc
        except ValueError as exc:
            raise TransportError(f"{method} {path}: the server's refusal is not JSON") from exc
        raise error_for(status, body)

    # -- identity ----------------------------------------------------------------------
    async def instance(self) -> dict[str, Any]:
        return await self.request("GET", "/api/v1/instance")

    async def enrol(
        self, code: str, user_cert: bytes, device_cert: bytes, root_key: bytes | None = None
    ) -> dict[str, Any]:
        body = {
            "code": code,
            "user_certificate": b64e(user_cert),
            "device_certificate": b64e(device_cert),
        }
        if root_key is not None:
            body["root_key"] = b64e(root_key)
        return await self.request("POST", "/api/v1/enrol", json=body)

    async def login(self, instance_id: str, device_id: str, key: SigningKey) -> str:
        """Challenge-response login; keeps and returns the bearer token."""
        challenge = await self.request(
            "POST", "/api/v1/auth/challenge", json={"device_id": device_id}
        )
        value = b64d(challenge["challenge"])
        signature = key.sign(login_message(instance_id, device_id, value))
        answer = await self.request(
            "POST",
            "/api/v1/auth/login",
            json={
                "device_id": device_id,
                "challenge": challenge["challenge"],
                "signature": b64e(signature),
            },
        )
        self.token = answer["token"]
        return self.token

    async def logout(self) -> None:
        await self.request("POST", "/api/v1/auth/logout")
        self.token = None

    async def whoami(self) -> dict[str, Any]:
        return await self.request("GET", "/api/v1/whoami")

    async def organisation(self, org_id: str) -> dict[str, Any]:
        return await self.request("GET", f"/api/v1/orgs/{org_id}")

    async def register_user(self, org_id: str, cert: bytes) -> dict[str, Any]:
        return await self.request(
            "POST", f"/api/v1/orgs/{org_id}/users", json={"certificate": b64e(cert)}
        )

    async def register_device(self, org_id: str, cert: bytes) -> dict[str, Any]:
        return await self.request(
            "POST", f"/api/v1/orgs/{org_id}/devices", json={"certificate": b64e(cert)}
        )

    async def revoke(self, org_id: str, statement: bytes) -> dict[str, Any]:
        return await self.request(
            "POST", f"/api/v1/orgs/{org_id}/revocations", json={"statement": b64e(statement)}
        )

    async def revocations(self, after: int = 0, limit: int = 1000) -> dict[str, Any]:
        """A page of signed revocations recorded after the cursor ``after``."""
        return await self.request(
            "GET", "/api/v1/revocations", params={"after": after, "limit": limit}
        )

    async def device(self, device_id: str) -> dict[str, Any]:
        return await self.request("GET", f"/api/v1/devices/{device_id}")

    # -- operations --------------------------------------------------------------------
    async def create_operation(self, charter: bytes, retention_days: int = 365) -> dict[str, Any]:
        return await self.request(
            "POST",
            "/api/v1/operations",
            json={"charter": b64e(charter), "retention_days": retention_days},
        )

    async def operations(self) -> list[dict[str, Any]]:
        return (await self.request("GET", "/api/v1/operations"))["operations"]

    async def operation(self, operation_id: str) -> dict[str, Any]:
        return await self.request("GET", f"/api/v1/operations/{operation_id}")

    async def charter_versions(self, operation_id: str) -> list[bytes]:
        body = await self.request("GET", f"/api/v1/operations/{operation_id}/charter")
        return [b64d(v) for v in body["versions"]]

    async def publish_charter(self, operation_id: str, charter: bytes) -> dict[str, Any]:
        return await self.request(
            "POST", f"/api/v1/operations/{operation_id}/charter", json={"charter": b64e(charter)}
        )

    async def set_phase(self, operation_id: str, phase: str) -> dict[str, Any]:
        return await self.request(
            "POST", f"/api/v1/operations/{operation_id}/phase", json={"phase": phase}
        )

    # -- areas -------------------------------------------------------------------------
    @staticmethod
    def _area(operation_id: str, area: str) -> str:
        return f"/api/v1/operations/{operation_id}/areas/{area}"

    async def post_key_package(self, operation_id: str, area: str, package: bytes) -> int:
        body = await self.request(
            "POST",
            self._area(operation_id, area) + "/key-packages",
            json={"key_package": b64e(package)},
        )
        return body["seq"]

    async def key_packages(self, operation_id: str, area: str) -> list[bytes]:
        body = await self.request("GET", self._area(operation_id, area) + "/key-packages")
        return [b64d(p) for p in body["key_packages"]]

    async def post_commit(self, operation_id: str, area: str, commit: bytes) -> dict[str, Any]:
        return await self.request(
            "POST", self._area(operation_id, area) + "/commits", json={"commit": b64e(commit)}
        )

    async def commits(self, operation_id: str, area: str, after_epoch: int = -1) -> list[bytes]:
        body = await self.request(
            "GET", self._area(operation_id, area) + "/commits", params={"after_epoch": after_epoch}
        )
        return [b64d(c) for c in body["commits"]]

    async def post_message(self, operation_id: str, area: str, envelope: bytes) -> int:
        body = await self.request(
            "POST", self._area(operation_id, area) + "/messages", json={"envelope": b64e(envelope)}
        )
        return body["seq"]

    async def post_batch(self, operation_id: str, area: str, envelopes: list[bytes]) -> list[int]:
        body = await self.request(
            "POST",
            self._area(operation_id, area) + "/messages/batch",
            json={"envelopes": [b64e(e) for e in envelopes]},
        )
        return body["seqs"]

    async def events(
        self, operation_id: str, area: str, after: int = 0, limit: int = 500
    ) -> list[dict[str, Any]]:
        body = await self.request(
            "GET",
            self._area(operation_id, area) + "/events",
            params={"after": after, "limit": limit},
        )
        return body["events"]

    async def sync(self, cursor: str = "", limit: int = 1000) -> dict[str, Any]:
        return await self.request("GET", "/api/v1/sync", params={"cursor": cursor, "limit": limit})

    # -- audit -------------------------------------------------------------------------
    async def audit_checkpoint(self, size: int | None = None) -> dict[str, Any]:
        """The latest signed audit checkpoint, or the stored one of exactly ``size`` entries."""
        path = "/api/v1/audit/checkpoint" if size is None else f"/api/v1/audit/checkpoints/{size}"
        return await self.request("GET", path)

    async def audit_entries(self, start: int, end: int) -> list[dict[str, Any]]:
        """Audit entries ``start`` to ``end`` (exclusive; at most 1000, cut at the log's end)."""
        body = await self.request(
            "GET", "/api/v1/audit/entries", params={"start": start, "end": end}
        )
        return body["entries"]

    async def declare(
        self, action: str, operation_id: str, records: int, *, include_personal: bool
    ) -> int:
        """Declare an action on decrypted content (e.g. an export with personal data); the
        server appends a ``client-declaration`` audit entry and returns its index."""
        body = await self.request(
            "POST",
            "/api/v1/audit/declarations",
            json={
                "action": action,
                "operation_id": operation_id,
                "records": records,
                "include_personal": include_personal,
            },
        )
        return body["index"]

    async def audit_inclusion_proof(self, index: int, size: int) -> list[bytes]:
        body = await self.request(
            "GET", "/api/v1/audit/proof/inclusion", params={"index": index, "size": size}
        )
        return [b64d(h) for h in body["proof"]]

    async def audit_consistency_proof(self, old: int, new: int) -> list[bytes]:
        body = await self.request(
            "GET", "/api/v1/audit/proof/consistency", params={"old": old, "new": new}
        )
        return [b64d(h) for h in body["proof"]]

    async def stream(self, cursor: str = "") -> AsyncIterator[dict[str, Any]]:
        """Follow the WebSocket stream from ``cursor``; yields each message the server sends."""
        assert self._session is not None
        url = self.base_url.replace("http", "ws", 1) + "/api/v1/stream"
        try:
            async with self._session.ws_connect(
                url,
                params={"cursor": cursor},
                headers=self._headers(),
                heartbeat=30,
                ssl=self._ssl if self._ssl is not None else True,
            ) as ws:
                async for message in ws:
                    if message.type != aiohttp.WSMsgType.TEXT:
                        break
                    yield message.json()
        except aiohttp.WSServerHandshakeError as exc:
            raise error_for(
                exc.status,
                {
                    "error": {
                        "code": {401: "unauthorized", 403: "forbidden"}.get(exc.status, "internal"),
                        "message": str(exc),
                    }
                },
            ) from exc
        except aiohttp.ClientError as exc:
            raise TransportError(f"stream: {exc}") from exc

    # -- blobs and receipts --
    async def create_blob(
        self, operation_id: str, area: str, size: int, sha256: bytes
    ) -> dict[str, Any]:
        """Declare an attachment blob of ``size`` bytes of ciphertext hashing to ``sha256``."""
        return await self.request(
            "POST",
            self._area(operation_id, area) + "/blobs",
            json={"size": size, "sha256": b64e(sha256)},
        )

    async def put_blob_chunk(self, blob_id: str, offset: int, data: bytes) -> dict[str, Any]:
        """Upload the chunk starting at ``offset`` (the blob's ``received`` so far)."""
        return await self.request(
            "PUT", f"/api/v1/blobs/{blob_id}", params={"offset": offset}, data=data
        )

    async def blob(self, blob_id: str) -> dict[str, Any]:
        return await self.request("GET", f"/api/v1/blobs/{blob_id}")

    async def download_blob(self, blob_id: str, start: int = 0, end: int | None = None) -> bytes:
        """The blob's bytes ``start`` to ``end - 1`` (``end`` exclusive, like a slice)."""
        if end is not None and end <= start:
            return b""
        headers = {}
        if start or end is not None:
            headers["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        return await self.request_bytes("GET", f"/api/v1/blobs/{blob_id}/data", headers=headers)

    async def post_receipt(self, receipt: bytes) -> dict[str, Any]:
        """Post a signed read or ack receipt; ``created`` is false for a repeat."""
        return await self.request("POST", "/api/v1/receipts", json={"receipt": b64e(receipt)})

    async def receipts(self, operation_id: str, area: str, message_id: str) -> dict[str, Any]:
        """Who has read and acknowledged a message, per organisation (coordinators only)."""
        return await self.request(
            "GET", self._area(operation_id, area) + f"/messages/{message_id}/receipts"
        )
