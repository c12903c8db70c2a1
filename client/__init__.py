"""OpSeal client: an enrolled device's verified view of the exchange.

``Client`` is the async library, ``SyncClient`` the same methods for scripts without an event
loop, and the exceptions below are what both raise: every one is a ``ClientError`` (see
:mod:`opseal.client.errors` for the tree of the server's refusals). The ``opseal`` command
line lives in :mod:`opseal.client.cli`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .attachments import AttachmentRefused
    from .audit import AuditError
    from .client import Client, IntegrityWarning, SyncReport
    from .content import ContentError
    from .errors import (
        ApiError,
        BadRequestError,
        ClientError,
        ConflictError,
        ForbiddenError,
        InvalidSignatureError,
        MalformedAnswerError,
        NotFoundError,
        NotMemberError,
        PayloadTooLargeError,
        PhaseClosedError,
        RangeNotSatisfiableError,
        RateLimitedError,
        ServerError,
        TransportError,
        UnauthorizedError,
        UnavailableError,
        WrongEpochError,
    )
    from .profile import Profile, ProfileError
    from .seizures import RecordError
    from .sync import SyncClient

# Names are loaded on first use (PEP 562), so that importing one light submodule, or
# `opseal --help`, does not pay for aiohttp, cryptography and jsonschema.
_WHERE = {
    "ApiError": "errors",
    "AttachmentRefused": "attachments",
    "AuditError": "audit",
    "BadRequestError": "errors",
    "Client": "client",
    "ClientError": "errors",
    "ConflictError": "errors",
    "ContentError": "content",
    "ForbiddenError": "errors",
    "IntegrityWarning": "client",
    "InvalidSignatureError": "errors",
    "MalformedAnswerError": "errors",
    "NotFoundError": "errors",
    "NotMemberError": "errors",
    "PayloadTooLargeError": "errors",
    "PhaseClosedError": "errors",
    "Profile": "profile",
    "ProfileError": "profile",
    "RangeNotSatisfiableError": "errors",
    "RateLimitedError": "errors",
    "RecordError": "seizures",
    "ServerError": "errors",
    "SyncClient": "sync",
    "SyncReport": "client",
    "TransportError": "errors",
    "UnauthorizedError": "errors",
    "UnavailableError": "errors",
    "WrongEpochError": "errors",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "ApiError",
    "AttachmentRefused",
    "AuditError",
    "BadRequestError",
    "Client",
    "ClientError",
    "ConflictError",
    "ContentError",
    "ForbiddenError",
    "IntegrityWarning",
    "InvalidSignatureError",
    "MalformedAnswerError",
    "NotFoundError",
    "NotMemberError",
    "PayloadTooLargeError",
    "PhaseClosedError",
    "Profile",
    "ProfileError",
    "RangeNotSatisfiableError",
    "RateLimitedError",
    "RecordError",
    "ServerError",
    "SyncClient",
    "SyncReport",
    "TransportError",
    "UnauthorizedError",
    "UnavailableError",
    "WrongEpochError",
]
