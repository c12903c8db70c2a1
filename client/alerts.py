"""``Alerts``: requests to act addressed to member organisations, and their answers (design §8).

An alert names member organisations (checked against the verified charter); a response
answers a verified alert addressed to this organisation. It depends on verified charters
(:class:`~opseal.client.ports.Charters`), the store and the outbox
(:class:`~opseal.client.ports.Poster`).
"""

from __future__ import annotations

from collections.abc import Sequence

from opseal.crypto.group import DeviceIdentity

from . import content
from .errors import ClientError
from .ports import Charters, Poster
from .store import Store, StoredMessage

__all__ = ["Alerts"]


class Alerts:
    """Posts alerts and responses and finds the responses to an alert."""

    def __init__(
        self, store: Store, identity: DeviceIdentity, charters: Charters, poster: Poster
    ) -> None:
        self._store, self._identity = store, identity
        self._charters, self._poster = charters, poster

    async def alert(
        self,
        op: str,
        area: str,
        targets: Sequence[str],
        action: str,
        deadline: str | None = None,
        *,
        handling: str = "H0",
    ) -> str:
        """Ask member organisations ``targets`` to act (by ``deadline``, YYYY-MM-DD); returns
        the alert's message id."""
        payload = content.alert(targets, action, deadline)
        members = {m.organisation_id for m in (await self._charters.charter(op)).members}
        unknown = [t for t in payload["targets"] if t not in members]
        if unknown:
            raise content.ContentError("targets", f"not members of {op}: {', '.join(unknown)}")
        return await self._poster.post(op, area, "alert", payload, handling=handling)

    async def respond(
        self, op: str, area: str, alert_id: str, outcome: str, *, handling: str = "H0"
    ) -> str:
        """Answer a verified alert addressed to this organisation; returns the message id."""
        payload = content.alert_response(alert_id, outcome)
        alert = self._store.message(payload["alert_id"])
        if alert is None or alert.op != op or alert.content_type != "alert":
            raise ClientError(f"{alert_id} is not a verified alert of {op}: sync first")
        try:
            targets = content.validate("alert", alert.json())["targets"]
        except (content.ContentError, ValueError) as exc:
            raise ClientError(f"alert {alert_id} is malformed: {exc}") from exc
        org_id = self._identity.organisation_id
        if org_id not in targets:
            raise ClientError(
                f"alert {alert_id} is addressed to {', '.join(targets)}, not to {org_id}"
            )
        return await self._poster.post(op, area, "alert-response", payload, handling=handling)

    def responses(self, alert_id: str) -> list[StoredMessage]:
        """Verified responses to an alert (call :meth:`sync` first for the newest)."""
        alert = self._store.message(alert_id)
        if alert is None:
            return []
        return [
            m
            for m in self._store.messages(alert.op, content_type="alert-response")
            if content.field_of(m.plaintext, "alert_id") == alert.message_id
        ]
