"""The one table of error codes, and the error body every refusal carries.

The server's error classes (:mod:`opseal.server.errors`) and the client's registry
(:mod:`opseal.client.errors`) are both checked against :data:`ERRORS` by
``tests/wire/test_errors_table.py``; the OpenAPI document lists each status's codes from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from msgspec import Meta

from .base import Response

__all__ = ["ERRORS", "STATUSES", "Error", "ErrorCode", "ErrorDetail", "Status", "codes_for"]


@dataclass(frozen=True)
class ErrorCode:
    """What an error code means, the HTTP status it travels with, and what a person who
    meets it can do (the ``opseal`` CLI's hint when nothing more precise applies)."""

    status: int
    meaning: str
    hint: str = ""


@dataclass(frozen=True)
class Status:
    """An error status as the document names and describes it."""

    name: str
    description: str


ERRORS: dict[str, ErrorCode] = {
    "bad_request": ErrorCode(
        400, "malformed JSON, wrong types, bad fields",
        "check the value the message names (`opseal COMMAND --help`)",
    ),
    "invalid_signature": ErrorCode(
        400, "a signature or certificate does not verify",
        "run `opseal sync` and retry; if it persists, this device's keys or certificates may "
        "be out of date: ask your focal point",
    ),
    "unauthorized": ErrorCode(
        401, "no, unknown or expired token (or enrolment code)",
        "this device may be revoked or its enrolment code spent or expired: its focal point "
        "issues a new one",
    ),
    "forbidden": ErrorCode(
        403, "authenticated but not allowed",
        "your organisation's role does not allow this (`opseal op charter OP` shows who may do "
        "what)",
    ),
    "not_member": ErrorCode(
        403, "the organisation is not in the operation",
        "your organisation is not in this operation's charter: ask its coordinator to add it",
    ),
    "phase_closed": ErrorCode(
        403, "the operation's phase forbids it",
        "the operation is closed or archived and takes nothing more (`opseal op show OP`)",
    ),
    "not_found": ErrorCode(
        404, "no such resource or endpoint",
        "check the id (`opseal op list`, `opseal read`)",
    ),
    "method_not_allowed": ErrorCode(
        405, "the path exists but not with this method",
        "the server does not offer this: check that client and server are of the same version",
    ),
    "conflict": ErrorCode(
        409, "conflicts with stored state, e.g. a duplicate id",
        "the server already holds something else under this name or id: choose another or "
        "check what it holds",
    ),
    "wrong_epoch": ErrorCode(
        409, "commit or message for a non-current epoch",
        "the area's keys changed meanwhile: run `opseal sync` and retry",
    ),
    "counter_refused": ErrorCode(
        409, "a sender's counter not above its last in the area, or jumping too far",
        "this device's local state is behind the server (a restored backup, or a copied "
        "profile?): enrol a new device rather than reuse this one",
    ),
    "payload_too_large": ErrorCode(
        413, "a body, batch, blob or chunk exceeds a limit",
        "send less at once, or ask the instance admin about the server's limits",
    ),
    "range_not_satisfiable": ErrorCode(
        416, "a byte range outside the blob",
        "delete the partial download and run the command again",
    ),
    "rate_limited": ErrorCode(429, "too many requests; retry later", "wait a minute and retry"),
    "internal": ErrorCode(
        500, "an unexpected failure, logged under the request id",
        "retry; if it persists, tell the instance admin the time and the command",
    ),
    "unavailable": ErrorCode(
        503, "the service cannot answer now",
        "retry later; anything queued stays in the outbox for `opseal sync`",
    ),
}  # fmt: skip
"""Every machine code the API answers with."""

STATUSES: dict[int, Status] = {
    400: Status("BadRequest", "The request is malformed or a field is invalid; changes nothing."),
    401: Status("Unauthorized", "No, an unknown or an expired bearer token (or enrolment code)."),
    403: Status("Forbidden", "Authenticated but not allowed: not a member, wrong role or phase."),
    404: Status(
        "NotFound", "The operation, area, organisation, device, blob or message is unknown."
    ),
    405: Status("MethodNotAllowed", "The path exists but not with this method."),
    409: Status(
        "Conflict", "The request conflicts with stored state (duplicate, wrong epoch, ...)."
    ),
    413: Status("PayloadTooLarge", "A body, batch, blob or chunk exceeds this server's limit."),
    416: Status("RangeNotSatisfiable", "The byte range lies outside the blob."),
    429: Status("RateLimited", "Too many requests from this device or address; retry later."),
    500: Status(
        "InternalError", "An unexpected failure; the X-Request-Id identifies it in the logs."
    ),
    503: Status("Unavailable", "The service cannot answer now (e.g. the audit log is damaged)."),
}
"""Each error status's response name and description in the document."""


def codes_for(status: int) -> list[str]:
    """The codes that travel with ``status``, in table order."""
    return [code for code, entry in ERRORS.items() if entry.status == status]


class ErrorDetail(Response, frozen=True):
    """What failed."""

    code: Annotated[str, Meta(description="machine code; the client maps it to an exception class")]
    message: Annotated[str, Meta(description="what failed and how to fix it; never a secret")]
    details: Annotated[
        dict[str, Any], Meta(description="machine-readable context, e.g. the field or index")
    ]


class Error(Response, frozen=True):
    """The body of every refusal."""

    error: ErrorDetail
