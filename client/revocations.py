"""``Revocations``: the signed revocations a device has learnt, kept append-only (design §3).

The server serves every organisation's revocation statements with the certificates that
prove them (``GET /revocations``). The device remembers each one it is served — the server
cannot later withdraw it — and verifies it as the server does: against the revoked key's own
certificate and the root of that key's organisation, taken from a verified charter (never
from the server). A statement whose organisation no verified charter lists yet stays
pending; one that fails verification is refused and reported. The verified ones form the
:class:`~opseal.crypto.certs.RevokedKeys` passed into every check the device makes.
"""

from __future__ import annotations

from collections.abc import Iterable

from opseal.crypto.certs import Certificate, Revocation, RevokedKeys
from opseal.crypto.charter import Charter
from opseal.crypto.encoding import b64d
from opseal.crypto.errors import CryptoError

from .session import Session
from .store import Store

__all__ = ["Revocations"]

_CURSOR = "revocations-cursor"


class Revocations:
    """Fetches, verifies and remembers revocations; answers with the revoked keys."""

    def __init__(self, session: Session, store: Store) -> None:
        self._session, self._store = session, store
        self._revoked: RevokedKeys | None = None

    def revoked(self) -> RevokedKeys:
        """The keys of every verified revocation this device holds."""
        if self._revoked is None:
            statements = (Revocation.from_bytes(r[1]) for r in self._store.revocations("verified"))
            self._revoked = RevokedKeys.of(statements)
        return self._revoked

    async def refresh(self) -> int:
        """Fetch the revocations recorded since the last call; returns how many arrived."""
        cursor = int((self._store.get(_CURSOR) or b"0").decode())
        arrived = 0
        while True:
            page = await self._session.api.revocations(cursor)
            with self._store.transaction():
                for item in page.revocations:
                    issuer = item.issuer_certificate
                    self._store.add_revocation(
                        item.org_id,
                        b64d(item.statement),
                        b64d(item.subject_certificate),
                        None if issuer is None else b64d(issuer),
                    )
                self._store.put(_CURSOR, str(page.cursor).encode())
            arrived += len(page.revocations)
            if not page.revocations or page.cursor <= cursor:
                return arrived
            cursor = page.cursor

    def settle(self, charters: Iterable[Charter]) -> None:
        """Verify pending revocations against the organisation roots ``charters`` list."""
        roots: dict[str, list[Charter]] = {}
        for charter in charters:
            for member in charter.members:
                roots.setdefault(member.organisation_id, []).append(charter)
        for org, statement, subject, issuer in self._store.revocations("pending"):
            if org in roots:
                self._settle_one(org, statement, subject, issuer, roots[org])

    def _settle_one(
        self,
        org: str,
        statement: bytes,
        subject: bytes,
        issuer: bytes | None,
        charters: list[Charter],
    ) -> None:
        try:
            rev = Revocation.from_bytes(statement)
            subject_cert = Certificate.from_bytes(subject)
            issuer_cert = Certificate.from_bytes(issuer) if issuer is not None else None
            if rev.organisation_id != org:
                raise CryptoError("the statement names another organisation")
            error: CryptoError | None = None
            for charter in charters:
                try:
                    root = charter.member(org).root_key
                    rev.verify(root, subject_cert, user_cert=issuer_cert)
                    break
                except CryptoError as exc:
                    error = exc
            else:
                raise error or CryptoError("no root to verify it against")
        except CryptoError as exc:
            self._store.settle_revocation(statement, "refused")
            self._store.warn("", "", None, "revocation-refused", f"revocation for {org}: {exc}")
            return
        self._store.settle_revocation(statement, "verified")
        self._revoked = None
