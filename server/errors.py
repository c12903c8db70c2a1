"""The server's one error family: each error has an HTTP status, a machine code and a message.

One middleware (:mod:`opseal.server.http.middlewares`) turns them into
``{"error": {"code", "message", "details"}}``; anything else becomes a generic 500 and is
logged in full. Messages name the field or rule that failed, never a secret or content.

    OpSealError
    ├── BadRequest            400 bad_request          malformed JSON, wrong types, bad fields
    │   └── InvalidSignature  400 invalid_signature    a signature or certificate does not verify
    ├── Unauthorized          401 unauthorized         no, unknown or expired token
    ├── Forbidden             403 forbidden            authenticated but not allowed
    │   ├── NotMember         403 not_member           organisation not in the operation
    │   └── PhaseClosed       403 phase_closed         the operation's phase forbids it
    ├── NotFound              404 not_found
    ├── MethodNotAllowed      405 method_not_allowed   the path exists, not with this method
    ├── Conflict              409 conflict             e.g. a duplicate id with other content
    │   ├── WrongEpoch        409 wrong_epoch          commit or message for a non-current epoch
    │   └── CounterRefused    409 counter_refused      a sender's counter not above its last, or
    │                                                  jumping more than MAX_COUNTER_JUMP
    ├── PayloadTooLarge       413 payload_too_large
    ├── RangeNotSatisfiable   416 range_not_satisfiable  a byte range outside the blob
    ├── RateLimited           429 rate_limited
    └── Unavailable           503 unavailable

Each code, its status and meaning are in the one table :data:`opseal.wire.errors.ERRORS`
(``tests/wire/test_errors_table.py`` checks these classes against it).
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BadRequest",
    "Conflict",
    "CounterRefused",
    "Forbidden",
    "InvalidSignature",
    "MethodNotAllowed",
    "NotFound",
    "NotMember",
    "OpSealError",
    "PayloadTooLarge",
    "PhaseClosed",
    "RangeNotSatisfiable",
    "RateLimited",
    "Unauthorized",
    "Unavailable",
    "WrongEpoch",
]


class OpSealError(Exception):
    """Base of every error the API reports to clients."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_json(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequest(OpSealError):
    status, code = 400, "bad_request"


class InvalidSignature(BadRequest):
    status, code = 400, "invalid_signature"


class Unauthorized(OpSealError):
    status, code = 401, "unauthorized"


class Forbidden(OpSealError):
    status, code = 403, "forbidden"


class NotMember(Forbidden):
    status, code = 403, "not_member"


class PhaseClosed(Forbidden):
    status, code = 403, "phase_closed"


class NotFound(OpSealError):
    status, code = 404, "not_found"


class MethodNotAllowed(OpSealError):
    status, code = 405, "method_not_allowed"


class Conflict(OpSealError):
    status, code = 409, "conflict"


class WrongEpoch(Conflict):
    status, code = 409, "wrong_epoch"


class CounterRefused(Conflict):
    status, code = 409, "counter_refused"


class PayloadTooLarge(OpSealError):
    status, code = 413, "payload_too_large"


class RangeNotSatisfiable(OpSealError):
    status, code = 416, "range_not_satisfiable"


class RateLimited(OpSealError):
    status, code = 429, "rate_limited"


class Unavailable(OpSealError):
    status, code = 503, "unavailable"
