"""Sanitised release of a seizure record into a stakeholder area (design §5, §8).

A coordinator puts a copy of a verified seizure record into an area that stakeholders read.
The copy is a ``release`` message: ``{"source_message_id", "released_by_org", "record"}``, the
record sanitised by :func:`sanitise`:

- **Kept**: the structured fields of :data:`KEPT_FIELDS` (and :data:`KEPT_LINE_FIELDS` of each
  goods line). An allow-list: a field this module does not know is free text until cleared.
- **Removed**: personal data (:data:`.export.PERSONAL_FIELDS`: ``persons`` and whatever the
  schema marks ``x-personal-data``) always; attachments (photos may show people or labels, and
  blobs are served per area) always; every other field, including the free text
  ``description`` of goods lines, ``remarks``, ``concealment`` and ``offence``, unless named
  in ``keep`` (``opseal release --keep FIELD``). Personal data and attachments cannot be kept.
  (The option was once ``--clear``, "cleared for release", which read as "erase": the CLI now
  refuses it and names ``--keep``.)

**Rules** (:func:`check_release`): only an organisation whose verified charter role is
``coordinator`` releases; the target area's readers must include ``stakeholder`` and the
coordinator must be allowed to post there. By handling code: ``H0`` and ``H1`` may be
released; ``H2`` only with the originating administration's permission; ``H3`` never (its
restrictions are in free text the client cannot check: post what they allow by hand).
The release carries the source's handling code.

**Provenance** (design §15): only the version of a record that counts may be released — the
latest version, by its own organisation, whose ``reporting_country`` that organisation may
report for (:func:`.report.latest_versions`); a forged, repeated or superseded record is
refused with the reason. A ``correction`` that counts is released like a seizure record.

**Permission** for an ``H2`` record is a verified message of the same operation and area as
the record, of content type ``text``, posted by a device of the record's originating
organisation, whose payload is ``{"text": ..., "permission": "release", "message_id": <the
record's message id>}`` (:func:`permission`). Any stakeholder area is covered.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from opseal.crypto.charter import Charter
from opseal.crypto.errors import CryptoError

from . import content
from .corrections import submissions
from .errors import ClientError
from .export import is_personal
from .ports import Charters, Poster
from .report import RECORD_TYPES, latest_versions, reporting_codes
from .store import Store, StoredMessage

__all__ = [
    "KEPT_FIELDS",
    "KEPT_LINE_FIELDS",
    "ReleaseRefused",
    "Releaser",
    "check_release",
    "counted_version",
    "erased_fields",
    "has_permission",
    "payload",
    "permission",
    "sanitise",
    "source_record",
]

KEPT_FIELDS = (
    "record_id",
    "case_ref",
    "reporting_country",
    "reporting_office",
    "seizure_date",
    "location_type",
    "transport_mode",
    "detection_method",
    "ecommerce",
    "platform",
    "goods",
    "route",
)
KEPT_LINE_FIELDS = (
    "category",
    "hs_code",
    "brand",
    "rights_holder",
    "quantity_items",
    "weight_kg",
)
NEVER_RELEASED = ("attachments",)


class ReleaseRefused(ClientError):
    """The release is not allowed (role, area, handling code or permission)."""


def sanitise(record: Mapping[str, Any], keep: Iterable[str] = ()) -> dict[str, Any]:
    """``record`` without personal data, attachments and free text not kept. ``keep`` names
    fields to keep besides :data:`KEPT_FIELDS` (a goods line field such as ``description``
    is kept in every line)."""
    kept = set(keep)
    refused = sorted(c for c in kept if is_personal(c) or c in NEVER_RELEASED)
    if refused:
        raise ReleaseRefused(
            f"{', '.join(refused)} may not be kept in a release: personal data and "
            "attachments are never released"
        )
    out: dict[str, Any] = {}
    for name, value in record.items():
        if is_personal(name) or name in NEVER_RELEASED:
            continue
        if name in KEPT_FIELDS or name in kept:
            out[name] = value
    lines = [g for g in record.get("goods") or [] if isinstance(g, Mapping)]
    line_keep = set(KEPT_LINE_FIELDS) | kept
    out["goods"] = [{k: v for k, v in line.items() if k in line_keep} for line in lines]
    return out


def erased_fields(record: Mapping[str, Any], copy: Mapping[str, Any]) -> list[str]:
    """The fields of ``record`` (``goods.FIELD`` for a goods line's) that ``copy`` lacks."""
    gone = {name for name in record if name not in copy}
    for line, kept in zip(record.get("goods") or [], copy.get("goods") or [], strict=False):
        if isinstance(line, Mapping):
            gone |= {f"goods.{name}" for name in line if name not in kept}
    return sorted(gone)


def permission(message_id: str, note: str = "") -> dict[str, Any]:
    """The ``text`` payload by which an originating administration permits the release of
    its record ``message_id`` to stakeholders."""
    message_id = str(uuid.UUID(str(message_id)))
    text = note or f"Release of record message {message_id} to stakeholders is permitted."
    return {**content.text(text), "permission": "release", "message_id": message_id}


def has_permission(source: StoredMessage, messages: Iterable[StoredMessage]) -> bool:
    """Whether ``messages`` hold a verified permission for ``source`` from its originator."""
    for m in messages:
        if (m.op, m.area, m.content_type, m.org) != (source.op, source.area, "text", source.org):
            continue
        try:
            p = m.json()
        except ValueError:
            continue
        if (
            isinstance(p, dict)
            and p.get("permission") == "release"
            and p.get("message_id") == source.message_id
        ):
            return True
    return False


def check_release(
    charter: Charter,
    org_id: str,
    source: StoredMessage,
    to_area: str,
    messages: Iterable[StoredMessage],
) -> None:
    """Raise :class:`ReleaseRefused` unless ``org_id`` may release ``source`` into ``to_area``.
    ``messages`` are the verified messages of the source's area (searched for a permission)."""
    try:
        role = charter.role_of(org_id)
        policy = charter.area(to_area)
    except CryptoError as exc:
        raise ReleaseRefused(str(exc)) from exc
    if role != "coordinator":
        raise ReleaseRefused(f"only a coordinator releases records; {org_id} is {role!r}")
    if "stakeholder" not in policy.read_roles:
        raise ReleaseRefused(f"stakeholders do not read area {to_area!r}: release into one they do")
    if not charter.may_post(role, to_area):
        raise ReleaseRefused(f"role {role!r} may not post in area {to_area!r}")
    if source.content_type not in RECORD_TYPES:
        raise ReleaseRefused(
            f"{source.message_id} is a {source.content_type}, not a seizure record"
        )
    if to_area == source.area:
        raise ReleaseRefused(f"the record is already in area {to_area!r}")
    if source.handling == "H3":
        raise ReleaseRefused(
            f"{source.message_id} is H3 (other restrictions in the text): the client cannot "
            "check them; read them and post what they allow by hand"
        )
    if source.handling == "H2" and not has_permission(source, messages):
        raise ReleaseRefused(
            f"{source.message_id} is H2 (no further dissemination without permission) and "
            f"{source.org} has not permitted its release: ask {source.org} to run "
            f"`opseal permit-release {source.message_id}`"
        )
    if source.handling not in ("H0", "H1", "H2"):
        raise ReleaseRefused(f"unknown handling code {source.handling!r}")


def source_record(source: StoredMessage) -> dict[str, Any]:
    """The seizure record a verified seizure or correction message holds."""
    try:
        record = source.json()
    except ValueError as exc:
        raise ReleaseRefused(f"{source.message_id} is not a JSON record") from exc
    if source.content_type == "correction" and isinstance(record, dict):
        record = record.get("record")
    if not isinstance(record, dict):
        raise ReleaseRefused(f"{source.message_id} is not a seizure record")
    return record


def payload(
    source: StoredMessage, released_by_org: str, keep: Iterable[str] = ()
) -> dict[str, Any]:
    """The ``release`` payload for ``source``: its sanitised record, checked as a seizure
    record."""
    return content.release(
        {
            "source_message_id": source.message_id,
            "released_by_org": released_by_org,
            "record": sanitise(source_record(source), keep),
        }
    )


def counted_version(
    charter: Charter, messages: Iterable[StoredMessage], message_id: str
) -> StoredMessage:
    """The verified message ``message_id`` if it holds the version of a record that counts
    (see the module docstring); :class:`ReleaseRefused` says why not."""
    messages = list(messages)
    versions, excluded = latest_versions(submissions(messages), reporting_codes(charter))
    for v in versions:
        if v.submission.message_id == message_id:
            source: StoredMessage = v.submission.source
            return source
    reasons = [e.reason for e in excluded if e.message_id == message_id]
    if reasons:
        raise ReleaseRefused(f"{message_id} does not count: {reasons[0]}")
    kinds = {m.content_type for m in messages if m.message_id == message_id}
    if kinds & set(RECORD_TYPES):
        later = [v.submission.message_id for v in versions]
        raise ReleaseRefused(
            f"{message_id} is not the latest version of its record; release the latest "
            f"(one of {len(later)} current versions, see `opseal export`)"
        )
    kind = ", ".join(sorted(kinds)) or "message"
    raise ReleaseRefused(f"{message_id} is a {kind}, not a seizure record")


class Releaser:
    """Posts sanitised copies of verified seizure records, as a coordinator."""

    def __init__(self, store: Store, org_id: str, charters: Charters, poster: Poster) -> None:
        self._store, self._org_id = store, org_id
        self._charters, self._poster = charters, poster

    async def prepare(
        self, message_id: str, to_area: str, keep: Iterable[str] = ()
    ) -> tuple[StoredMessage, dict[str, Any]]:
        """The source of a release and the payload it would post (checked by
        :func:`check_release`), without posting: what ``opseal release`` previews."""
        found = self._store.message(message_id)
        if found is None:
            raise ClientError(f"message {message_id} is not among this device's verified messages")
        charter = await self._charters.charter(found.op, refresh=True)
        source = counted_version(charter, self._store.messages(found.op), message_id)
        check_release(
            charter, self._org_id, source, to_area, self._store.messages(source.op, source.area)
        )
        return source, payload(source, self._org_id, keep)

    async def release(self, message_id: str, to_area: str, keep: Iterable[str] = ()) -> str:
        """Post a sanitised copy of verified seizure record ``message_id`` into ``to_area``
        (checked by :func:`check_release`); returns the release's message id."""
        source, body = await self.prepare(message_id, to_area, keep)
        return await self._poster.post(
            source.op, to_area, "release", body, handling=source.handling
        )
