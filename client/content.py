"""Content payloads (design §5, §8): the plaintext JSON inside each content type.

Builders (:func:`text`, :func:`document`, :func:`alert`, :func:`alert_response`,
:func:`seizure`) check what is about to be sealed and return the payload; :func:`validate`
checks a payload of any content type, before sealing or after decryption. The checks are
structural (required fields, types, enumerations, dates); a failure raises
:class:`ContentError` naming the field, e.g. ``goods[1].category``.

Payloads:

- ``text``: ``{"text": markdown}``
- ``document``: ``{"title": str, "attachments": [attachment, ...]}``
- ``alert``: ``{"targets": [organisation id, ...], "action": str, "deadline": "YYYY-MM-DD" | null}``
- ``alert-response``: ``{"alert_id": message id, "outcome": str}``
- ``seizure``: a seizure record, valid against the versioned JSON Schema shipped in the
  package (``schemas/seizure-record.v1.json``, :mod:`.schema`): ``record_id``, ``case_ref``,
  ``reporting_country`` (ISO 3166 alpha-2), ``seizure_date`` (YYYY-MM-DD), ``transport_mode``,
  ``ecommerce`` (bool) and ``goods`` (one or more lines with ``category`` and optional
  ``description``, ``hs_code``, ``brand``, ``rights_holder``, ``quantity_items``,
  ``weight_kg``) are required; the other fields of design §8 are optional; unknown fields are
  refused.
- ``release``: ``{"source_message_id": message id, "released_by_org": str, "record": a
  sanitised seizure record (checked like a seizure record)}`` (see :mod:`.release`).
- ``correction``: ``{"supersedes": message id, "record": a seizure record}``, the new version
  of a record the same organisation posted earlier (design §15 "Provenance").

An attachment is ``{"blob_id": ..., **FileMeta.to_json()}`` (:class:`.attachments.Attachment`).
"""

from __future__ import annotations

import datetime
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from . import schema
from .errors import ClientError

if TYPE_CHECKING:  # attachments bring the crypto core: loaded when an attachment is handled
    from .attachments import Attachment

__all__ = [
    "CATEGORIES",
    "SEIZURE_NAMESPACE",
    "TRANSPORT_MODES",
    "ContentError",
    "alert",
    "alert_response",
    "attachments_of",
    "correction",
    "correction_message_id",
    "document",
    "field_of",
    "parse_date",
    "record_message_id",
    "release",
    "seizure",
    "text",
    "validate",
]

CATEGORIES = (
    "ipr",
    "medicines",
    "medical-devices",
    "other-counterfeit",
    "drugs",
    "precursors",
    "hazardous",
    "other",
)
TRANSPORT_MODES = ("postal", "express", "air-cargo", "sea-cargo", "road", "rail", "passenger")
SEIZURE_NAMESPACE = uuid.UUID("5b0d3c6e-6f70-5365-616c-2f7365697a65")
"""Namespace of the deterministic message ids of seizure records (:func:`record_message_id`)."""

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MAX_TEXT = 1_000_000
_MAX_SHORT = 256


class ContentError(ClientError):
    """A payload without the shape its content type needs; ``field`` names where."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


# -- field checks ------------------------------------------------------------------------
def _string(value: object, field: str, *, max_len: int = _MAX_SHORT, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise ContentError(field, f"expected text, got {type(value).__name__}")
    if not empty and not value.strip():
        raise ContentError(field, "required, and must not be blank")
    if len(value) > max_len:
        raise ContentError(field, f"at most {max_len} characters")
    return value


def parse_date(value: object, field: str) -> str:
    """``value`` if it is a real calendar date written YYYY-MM-DD."""
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ContentError(field, f"expected a date as YYYY-MM-DD, got {value!r}")
    try:
        datetime.date.fromisoformat(value)
    except ValueError as exc:
        raise ContentError(field, f"{value!r} is not a calendar date") from exc
    return value


def _object(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ContentError(field, "expected an object")
    return value


def _list(value: object, field: str, *, least: int = 0) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise ContentError(field, "expected a list")
    if len(value) < least:
        raise ContentError(field, f"expected at least {least} item(s)")
    return list(value)


def _attachments(value: object, field: str = "attachments") -> list[dict[str, Any]]:
    from .attachments import Attachment

    out = []
    for n, item in enumerate(_list(value, field)):
        if isinstance(item, Attachment):
            item = item.to_json()
        try:
            out.append(Attachment.from_json(item).to_json())
        except ClientError as exc:
            raise ContentError(f"{field}[{n}]", str(exc)) from exc
    return out


# -- builders ----------------------------------------------------------------------------
def text(markdown: str) -> dict[str, Any]:
    """A ``text`` payload (Markdown)."""
    return {"text": _string(markdown, "text", max_len=_MAX_TEXT)}


def document(
    title: str, attachments: Iterable[Attachment | Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """A ``document`` payload: a title and its attachments (e.g. the Operational Plan PDF)."""
    return {"title": _string(title, "title"), "attachments": _attachments(list(attachments))}


def alert(targets: Iterable[str], action: str, deadline: str | None = None) -> dict[str, Any]:
    """An ``alert`` payload: the organisations asked to act, what to do, and by when."""
    if isinstance(targets, str):
        raise ContentError("targets", "expected a list of organisation ids")
    names = _list(list(targets), "targets", least=1)
    for n, target in enumerate(names):
        _string(target, f"targets[{n}]", max_len=128)
    if len(set(names)) != len(names):
        raise ContentError("targets", "lists an organisation twice")
    return {
        "targets": names,
        "action": _string(action, "action", max_len=_MAX_TEXT),
        "deadline": None if deadline is None else parse_date(deadline, "deadline"),
    }


def alert_response(alert_id: str, outcome: str) -> dict[str, Any]:
    """An ``alert-response`` payload: which alert it answers, and what was found or done."""
    try:
        alert_id = str(uuid.UUID(str(alert_id)))
    except ValueError as exc:
        raise ContentError("alert_id", f"expected a message id (UUID), got {alert_id!r}") from exc
    return {"alert_id": alert_id, "outcome": _string(outcome, "outcome", max_len=_MAX_TEXT)}


def seizure(record: Mapping[str, Any]) -> dict[str, Any]:
    """A ``seizure`` payload: the record, checked against the shipped JSON Schema
    (:mod:`.schema`, design §8); the first field at fault is named."""
    out = dict(_object(record, "record"))
    found = schema.problems(out)
    if found:
        raise ContentError(*found[0])
    parse_date(out["seizure_date"], "seizure_date")  # a calendar date, whatever the schema draft
    if "attachments" in out:
        out["attachments"] = _attachments(out["attachments"])
    return out


def release(value: Mapping[str, Any]) -> dict[str, Any]:
    """A ``release`` payload: the source record's message id, the releasing organisation and
    the sanitised record (checked like a seizure record)."""
    p = _object(value, "release")
    try:
        source = str(uuid.UUID(str(p.get("source_message_id"))))
    except ValueError as exc:
        raise ContentError("source_message_id", "expected a message id (UUID)") from exc
    record = seizure(_object(p.get("record"), "record"))
    return {
        "source_message_id": source,
        "released_by_org": _string(p.get("released_by_org"), "released_by_org", max_len=128),
        "record": record,
    }


def correction(value: Mapping[str, Any]) -> dict[str, Any]:
    """A ``correction`` payload: the message id of the version it supersedes and the whole
    corrected record (checked like a seizure record)."""
    p = _object(value, "correction")
    try:
        supersedes = str(uuid.UUID(str(p.get("supersedes"))))
    except ValueError as exc:
        raise ContentError("supersedes", "expected a message id (UUID)") from exc
    unknown = sorted(set(p) - {"supersedes", "record"})
    if unknown:
        raise ContentError(unknown[0], "unknown field of a correction")
    return {"supersedes": supersedes, "record": seizure(_object(p.get("record"), "record"))}


def record_message_id(op: str, org: str, record: Mapping[str, Any]) -> uuid.UUID:
    """The message id of a seizure record: derived from the operation, the sending
    organisation and the record id, so a re-submission is recognised and never duplicates
    it. The server keeps ids per sender, so no one else's message can occupy it."""
    key = json.dumps(["seizure", op, org, record["record_id"]])
    return uuid.uuid5(SEIZURE_NAMESPACE, key)


def correction_message_id(op: str, org: str, record_id: str, supersedes: str) -> uuid.UUID:
    """The message id of the correction of ``supersedes``: a re-run sends it once."""
    key = json.dumps(["correction", op, org, record_id, str(supersedes)])
    return uuid.uuid5(SEIZURE_NAMESPACE, key)


# -- validation of any payload -----------------------------------------------------------
def _validate_document(p: Mapping[str, Any]) -> dict[str, Any]:
    return document(p.get("title"), p.get("attachments", []))  # type: ignore[arg-type]


def _validate_alert(p: Mapping[str, Any]) -> dict[str, Any]:
    return alert(_list(p.get("targets"), "targets"), p.get("action"), p.get("deadline"))  # type: ignore[arg-type]


_VALIDATORS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "text": lambda p: text(p.get("text")),  # type: ignore[arg-type]
    "document": _validate_document,
    "alert": _validate_alert,
    "alert-response": lambda p: alert_response(p.get("alert_id"), p.get("outcome")),  # type: ignore[arg-type]
    "seizure": seizure,
    "release": release,
    "correction": correction,
}


def validate(content_type: str, payload: Any) -> dict[str, Any]:
    """``payload`` checked for ``content_type``; :class:`ContentError` names what is wrong."""
    check = _VALIDATORS.get(content_type)
    if check is None:
        raise ContentError(
            "content_type", f"{content_type!r} is not one of {', '.join(_VALIDATORS)}"
        )
    return check(_object(payload, content_type))


def field_of(plaintext: bytes, name: str) -> Any:
    """One field of a JSON object payload; None if absent or the payload is not an object."""
    try:
        payload = json.loads(plaintext)
    except ValueError:
        return None
    return payload.get(name) if isinstance(payload, dict) else None


def attachments_of(payload: Mapping[str, Any]) -> list[Attachment]:
    """The attachments a document or seizure payload references."""
    from .attachments import Attachment

    return [Attachment.from_json(a) for a in payload.get("attachments") or []]
