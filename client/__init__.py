"""OpSeal client: an enrolled device's verified view of the exchange.

``Client`` is the async library, ``SyncClient`` the same methods for scripts without an event
loop, and the exceptions below are what both raise: every one is a ``ClientError`` (see
:mod:`opseal.client.errors` for the tree of the server's refusals). The ``opseal`` command
line lives in :mod:`opseal.client.cli`.
"""

from __future__ import annotations

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
