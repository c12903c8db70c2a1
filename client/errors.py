"""Typed client exceptions, chosen from the server's error codes.

ClientError
├── TransportError            the server could not be reached or answered garbage
├── SubmissionRefused         the server refused queued submissions for good (``refused``)
└── ApiError                  the server refused (code, message, details, status)
    ├── BadRequestError       bad_request
    │   └── InvalidSignatureError invalid_signature
    ├── UnauthorizedError     unauthorized
    ├── ForbiddenError        forbidden
    │   ├── NotMemberError    not_member
    │   └── PhaseClosedError  phase_closed
    ├── NotFoundError         not_found
    ├── MethodNotAllowedError method_not_allowed
    ├── ConflictError         conflict
    │   ├── WrongEpochError   wrong_epoch
    │   └── CounterRefusedError counter_refused
    ├── PayloadTooLargeError  payload_too_large
    ├── RangeNotSatisfiableError range_not_satisfiable
    ├── RateLimitedError      rate_limited
    ├── UnavailableError      unavailable
    └── ServerError           internal, or any code this client does not know
        └── MalformedAnswerError  an answer that is not the API's (missing field, wrong
                                  type, bad base64, not JSON): never a KeyError

The registry covers every code of :data:`opseal.wire.errors.ERRORS` (checked by
``tests/wire/test_errors_table.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "ApiError",
    "BadRequestError",
    "ClientError",
    "ConflictError",
    "CounterRefusedError",
    "ForbiddenError",
    "InvalidSignatureError",
    "MalformedAnswerError",
    "MethodNotAllowedError",
    "NotFoundError",
    "NotMemberError",
    "PayloadTooLargeError",
    "PhaseClosedError",
    "RangeNotSatisfiableError",
    "RateLimitedError",
    "Refusal",
    "ServerError",
    "SubmissionRefused",
    "TransportError",
    "UnauthorizedError",
    "UnavailableError",
    "WrongEpochError",
    "error_for",
]


class ClientError(Exception):
    """Base of every error the client raises."""


class TransportError(ClientError):
    """The server could not be reached, or its answer was not the API's."""


@dataclass(frozen=True)
class Refusal:
    """One submission the server refused for good: kept in the outbox, never sent again."""

    message_id: str
    op: str
    area: str
    code: str
    message: str


class SubmissionRefused(ClientError):
    """The server refused some of the submissions of a call; ``refused`` lists each (the
    others, ``accepted``, are held by the server)."""

    def __init__(self, refused: list[Refusal], accepted: list[str]) -> None:
        first = refused[0]
        super().__init__(
            f"the server refused {len(refused)} of {len(refused) + len(accepted)} submissions "
            f"({first.code}: {first.message})"
        )
        self.refused, self.accepted = refused, accepted


class ApiError(ClientError):
    """The server refused the request."""

    code = "internal"

    def __init__(self, message: str, *, status: int, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message, self.status, self.details = message, status, details or {}

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class BadRequestError(ApiError):
    code = "bad_request"


class InvalidSignatureError(BadRequestError):
    code = "invalid_signature"


class UnauthorizedError(ApiError):
    code = "unauthorized"


class ForbiddenError(ApiError):
    code = "forbidden"


class NotMemberError(ForbiddenError):
    code = "not_member"


class PhaseClosedError(ForbiddenError):
    code = "phase_closed"


class NotFoundError(ApiError):
    code = "not_found"


class MethodNotAllowedError(ApiError):
    code = "method_not_allowed"


class ConflictError(ApiError):
    code = "conflict"


class WrongEpochError(ConflictError):
    code = "wrong_epoch"


class CounterRefusedError(ConflictError):
    code = "counter_refused"


class PayloadTooLargeError(ApiError):
    code = "payload_too_large"


class RangeNotSatisfiableError(ApiError):
    code = "range_not_satisfiable"


class RateLimitedError(ApiError):
    code = "rate_limited"


class UnavailableError(ApiError):
    code = "unavailable"


class ServerError(ApiError):
    code = "internal"


class MalformedAnswerError(ServerError):
    """The server answered, but not in the API's shape: ``details["field"]`` names the field
    when one is to blame. Nothing of the answer was used. The message never quotes a value."""

    def __str__(self) -> str:
        return f"malformed answer: {self.message}"


_BY_CODE: dict[str, type[ApiError]] = {
    cls.code: cls
    for cls in (
        BadRequestError,
        InvalidSignatureError,
        UnauthorizedError,
        ForbiddenError,
        NotMemberError,
        PhaseClosedError,
        NotFoundError,
        MethodNotAllowedError,
        ConflictError,
        WrongEpochError,
        CounterRefusedError,
        PayloadTooLargeError,
        RangeNotSatisfiableError,
        RateLimitedError,
        UnavailableError,
        ServerError,
    )
}


def error_for(status: int, body: Any) -> ApiError:
    """The typed exception for an error response body."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return ServerError(f"HTTP {status} without an error body", status=status)
    cls = _BY_CODE.get(str(error.get("code")), ServerError)
    details = error.get("details") if isinstance(error.get("details"), dict) else {}
    return cls(str(error.get("message", "")), status=status, details=details)
