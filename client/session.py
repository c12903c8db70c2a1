"""``Session``: the connection a device's parts share — its API client and its login.

The API client can be replaced while the device is open (a test reroutes it through a
proxy), so parts reach the server through the session rather than keeping their own
reference. The session is also the :class:`~opseal.client.ports.Transfer` given to the
attachments part: blob requests and a fresh login, nothing else.
"""

from __future__ import annotations

import contextlib

from opseal.crypto.group import DeviceIdentity
from opseal.wire.blobs import Blob, BlobCreated, BlobProgress

from .api import ApiClient
from .errors import ClientError

__all__ = ["Session"]


class Session:
    """The device's API client, and how it logs in (a challenge signed with its key)."""

    def __init__(self, api: ApiClient, instance_id: str, identity: DeviceIdentity) -> None:
        self.api = api
        self._instance_id = instance_id
        self._identity = identity

    async def login(self) -> None:
        """Log in (again) with this device's signing key."""
        await self.api.login(
            self._instance_id, self._identity.device_id, self._identity.signing_key
        )

    async def relogin(self) -> None:
        """Log in again if the server lets us; a refusal is left to the next request."""
        with contextlib.suppress(ClientError):
            await self.login()

    # -- Transfer --
    async def create_blob(
        self, operation_id: str, area: str, size: int, sha256: bytes
    ) -> BlobCreated:
        """Declare a blob (see :meth:`ApiClient.create_blob`)."""
        return await self.api.create_blob(operation_id, area, size, sha256)

    async def put_blob_chunk(self, blob_id: str, offset: int, data: bytes) -> BlobProgress:
        """Send one chunk (see :meth:`ApiClient.put_blob_chunk`)."""
        return await self.api.put_blob_chunk(blob_id, offset, data)

    async def blob(self, blob_id: str) -> Blob:
        """A blob's upload state (see :meth:`ApiClient.blob`)."""
        return await self.api.blob(blob_id)

    async def download_blob(self, blob_id: str, start: int = 0, end: int | None = None) -> bytes:
        """A range of a blob's ciphertext (see :meth:`ApiClient.download_blob`)."""
        return await self.api.download_blob(blob_id, start, end)
