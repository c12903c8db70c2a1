"""Corrections of seizure records (design §15 "Provenance").

A record once submitted keeps its message id; a changed version is a ``correction``
message, ``{"supersedes": <message id of the latest version>, "record": <the whole new
record>}``, posted by a device of the same organisation in the same area. Its message id is
derived from the operation, the organisation, the record id and the superseded id
(:func:`~.content.correction_message_id`), so a re-run sends each correction once.

:func:`plan` sorts the records of a file against the organisation's own verified versions:
new records (submitted as seizures), changed ones (corrected), and unchanged ones (nothing
to send).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import content
from .report import RECORD_TYPES, Submission, record_heads

if TYPE_CHECKING:
    from .store import Store, StoredMessage

__all__ = ["Plan", "own_versions", "plan", "submissions"]


@dataclass
class Plan:
    """What submitting a file means for each record, against what the organisation has
    already posted in the area."""

    new: list[dict[str, Any]] = field(default_factory=list)
    changed: list[tuple[str, dict[str, Any], uuid.UUID]] = field(default_factory=list)
    """``(superseded message id, new record, correction message id)``."""
    unchanged: dict[str, str] = field(default_factory=dict)
    """Record id -> message id of the version that already holds the record as given."""

    def corrections(self) -> list[tuple[dict[str, Any], uuid.UUID]]:
        """``(correction payload, its message id)`` for each changed record."""
        return [
            (content.correction({"supersedes": old, "record": record}), message_id)
            for old, record, message_id in self.changed
        ]


def submissions(messages: Iterable[StoredMessage]) -> list[Submission]:
    """Verified record-carrying messages as :class:`~.report.Submission` (source = message);
    undecodable payloads stay in, to be excluded with their reason."""
    out = []
    for m in messages:
        if m.content_type not in RECORD_TYPES:
            continue
        try:
            payload = m.json()
        except ValueError:
            payload = None
        out.append(Submission(m.message_id, m.org, payload, m.content_type, m.area, m))
    return out


def _about(submission: Submission, record_ids: set[str]) -> bool:
    """Whether a submission may carry a version of one of ``record_ids`` (an unreadable one is
    kept, to be judged as before)."""
    record_id = _record_id(submission)
    return record_id is None or record_id in record_ids


def _record_id(submission: Submission) -> str | None:
    """The id of the record a submission carries; None if it cannot be read."""
    payload = submission.payload
    if isinstance(payload, dict) and submission.content_type == "correction":
        payload = payload.get("record")
    if not isinstance(payload, dict) or not isinstance(payload.get("record_id"), str):
        return None
    return str(payload["record_id"])


def own_versions(
    store: Store, op: str, area: str, org: str, record_ids: Iterable[str]
) -> list[StoredMessage]:
    """The stored messages of the area that may carry a version of ``org``'s ``record_ids``
    (its messages whose record cannot be read too, as :func:`plan` judges them), found
    through the store's record index after indexing what it has not seen: a submission opens
    only the messages that came since the last one, not the organisation's whole history."""
    fresh = store.unindexed_messages(op, area)
    tags: list[tuple[int, bytes]] = []
    for message in fresh:
        if message.content_type not in RECORD_TYPES:
            tags.append((message.seq, b""))
            continue
        record_id = _record_id(submissions([message])[0])
        tags.append((message.seq, store.record_tag(message.org, record_id)))
    if tags:
        store.index_records(op, area, tags)
    # the organisation's unreadable records too (the tag of None), as plan judges them
    wanted = {store.record_tag(org, record_id) for record_id in [*record_ids, None]}
    return store.messages_carrying(op, area, sorted(wanted))


def plan(op: str, org: str, records: Sequence[dict[str, Any]], own: Iterable[Submission]) -> Plan:
    """Sort checked ``records`` against ``own``, the organisation's verified submissions in
    the area. Only the versions of these records are checked (a national system's submission
    of one record does not re-validate its whole history)."""
    wanted = {record["record_id"] for record in records}
    heads = record_heads(s for s in own if s.org == org and _about(s, wanted))
    result = Plan()
    for record in records:
        head = heads.get((org, record["record_id"]))
        if head is None:
            result.new.append(record)
        elif head[1] == record:
            result.unchanged[record["record_id"]] = head[0]
        else:
            message_id = content.correction_message_id(op, org, record["record_id"], head[0])
            result.changed.append((head[0], record, message_id))
    return result
