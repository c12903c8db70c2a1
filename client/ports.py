"""The narrow interfaces the client's parts depend on (design §13).

Each part of :class:`~opseal.client.client.Client` is given only what it uses, typed by one of
these protocols, never the whole client: attachments move bytes through a :class:`Transfer`,
the outbox and admission read the device's group state through :class:`MemberStates`, and
whatever needs a verified charter asks :class:`Charters`. The concrete implementations are
:class:`~opseal.client.session.Session` (transfer) and
:class:`~opseal.client.verifier.Verifier` (charters and member states); tests may pass
anything with the same methods.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from opseal.crypto.certs import RevokedKeys
from opseal.crypto.charter import Charter
from opseal.crypto.group import GroupState
from opseal.wire.blobs import Blob, BlobCreated, BlobProgress

__all__ = ["Charters", "Clock", "MemberStates", "Poster", "Resync", "Revoked", "Transfer"]

Clock = Callable[[], int]
"""Seconds since the epoch (the client's ``now``)."""
Resync = Callable[[], Awaitable[object]]
"""Fetch and verify everything new (the client's ``sync``)."""


class Transfer(Protocol):
    """Blob requests and a fresh login: all the attachments part asks of the server."""

    async def create_blob(
        self, operation_id: str, area: str, size: int, sha256: bytes
    ) -> BlobCreated: ...

    async def put_blob_chunk(self, blob_id: str, offset: int, data: bytes) -> BlobProgress: ...

    async def blob(self, blob_id: str) -> Blob: ...

    async def download_blob(
        self, blob_id: str, start: int = 0, end: int | None = None
    ) -> bytes: ...

    async def login(self) -> None: ...


class Charters(Protocol):
    """Charters verified from the pinned coordinator root."""

    async def charter(self, operation_id: str, *, refresh: bool = False) -> Charter: ...

    async def pin(self, operation_id: str, coordinator_root_key_id: bytes) -> Charter: ...


class MemberStates(Protocol):
    """This device's verified group state and epoch secret in an area it belongs to."""

    def current(self, op: str, area: str) -> tuple[GroupState, bytes]: ...


class Revoked(Protocol):
    """The keys revoked by the revocations verified against the roots a charter lists."""

    def revoked(self, charter: Charter | None = None) -> RevokedKeys: ...


class Poster(Protocol):
    """Seal, queue and send one message through the outbox."""

    async def post(
        self,
        op: str,
        area: str,
        content_type: str,
        payload: Any,
        *,
        handling: str = "H0",
        requires_ack: bool = False,
    ) -> str: ...
