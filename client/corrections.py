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
    from .store import StoredMessage

__all__ = ["Plan", "plan", "submissions"]


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
    payload = submission.payload
    if isinstance(payload, dict) and submission.content_type == "correction":
        payload = payload.get("record")
    if not isinstance(payload, dict) or not isinstance(payload.get("record_id"), str):
        return True
    return payload["record_id"] in record_ids


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
