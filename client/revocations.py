"""``Revocations``: the signed revocations a device has learnt, kept append-only (design §3).

The server serves every organisation's revocation statements with the certificates that
prove them (``GET /revocations``). The device remembers each one it is served — the server
cannot later withdraw it — and verifies it as the server does: against the revoked key's own
certificate and the root of that key's organisation, taken from a verified charter (never
from the server). Each one is checked against every root a verified charter lists for its
organisation, and the result is kept per root: an operation's checks count only the
revocations verified against the roots its own charter lists, so a coordinator who lists
another organisation under a root it controls revokes nothing outside its operation. One
that fails a check is reported. The verified ones form the
:class:`~opseal.crypto.certs.RevokedKeys` passed into every check the device makes.
"""

from __future__ import annotations

from collections.abc import Iterable

from opseal.crypto.certs import Certificate, Revocation, RevokedKeys
from opseal.crypto.charter import Charter
from opseal.crypto.encoding import b64d
from opseal.crypto.errors import CryptoError
from opseal.crypto.keys import VerifyKey

from .session import Session
from .store import Store

__all__ = ["Revocations"]

_CURSOR = "revocations-cursor"


class Revocations:
    """Fetches, verifies and remembers revocations; answers with the revoked keys."""

    def __init__(self, session: Session, store: Store) -> None:
        self._session, self._store = session, store
        self._revoked: dict[bytes | None, RevokedKeys] = {}

    def revoked(self, charter: Charter | None = None) -> RevokedKeys:
        """The keys revoked by the revocations verified against the roots ``charter`` lists
        (so one operation's coordinator cannot revoke keys in another operation); without a
        charter, every verified revocation this device holds."""
        key = None if charter is None else charter.hash
        if key not in self._revoked:
            roots = None if charter is None else _roots(charter)
            self._revoked[key] = RevokedKeys.of(
                Revocation.from_bytes(statement)
                for org, statement, root in self._store.verified_revocations()
                if roots is None or roots.get(org) == root
            )
        return self._revoked[key]

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
        """Verify the revocations not yet checked against each organisation root that
        ``charters`` list; each result is kept per root."""
        roots = {
            (m.organisation_id, m.root_key.key_id): m.root_key for c in charters for m in c.members
        }
        for (org, key_id), root in sorted(roots.items()):
            for digest, statement, subject, issuer in self._store.unchecked_revocations(
                org, key_id
            ):
                self._settle_one(org, root, digest, statement, subject, issuer)

    def _settle_one(
        self,
        org: str,
        root: VerifyKey,
        digest: bytes,
        statement: bytes,
        subject: bytes,
        issuer: bytes | None,
    ) -> None:
        try:
            rev = Revocation.from_bytes(statement)
            subject_cert = Certificate.from_bytes(subject)
            issuer_cert = Certificate.from_bytes(issuer) if issuer is not None else None
            if rev.organisation_id != org:
                raise CryptoError("the statement names another organisation")
            rev.verify(root, subject_cert, user_cert=issuer_cert)
        except CryptoError as exc:
            self._store.check_revocation(digest, root.key_id, "refused")
            self._store.warn("", "", None, "revocation-refused", f"revocation for {org}: {exc}")
            return
        self._store.check_revocation(digest, root.key_id, "verified")
        self._revoked.clear()


def _roots(charter: Charter) -> dict[str, bytes]:
    """The root key id ``charter`` lists for each member organisation."""
    return {m.organisation_id: m.root_key.key_id for m in charter.members}
