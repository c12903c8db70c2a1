"""Error explanation: the one-line report, hint and exit code for any failure."""

from __future__ import annotations

import contextlib

from opseal.crypto.errors import CryptoError, WrongPassphrase

from .. import content as payloads
from ..attachments import AttachmentRefused
from ..audit import AuditError
from ..client import IntegrityWarning
from ..errors import (
    ApiError,
    ClientError,
    ConflictError,
    ForbiddenError,
    MalformedAnswerError,
    NotFoundError,
    RateLimitedError,
    SubmissionRefused,
    TransportError,
    UnauthorizedError,
)
from ..profile import ProfileError
from .codes import UNREACHABLE, CliError, usage
from .context import Ctx, wrong_passphrase


# -- errors -------------------------------------------------------------------------------------
def explain(exc: BaseException, ctx: Ctx | None) -> CliError:
    """The one-line report and exit code for a failure."""
    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, SubmissionRefused):
        return CliError(
            f"{exc}; nothing refused was sent",
            "see `opseal outbox` for each refusal; the rest was delivered",
        )
    if isinstance(exc, TransportError):
        server = _server(ctx)
        return CliError(
            f"cannot reach the server{server} ({exc})",
            "check the URL, the network and that the server runs, then retry "
            "(anything queued stays in the outbox for `opseal sync`)",
            UNREACHABLE,
        )
    if isinstance(exc, ProfileError):
        return usage(str(exc), "check --home and --profile (or OPSEAL_HOME, OPSEAL_PROFILE)")
    if isinstance(exc, WrongPassphrase) and ctx is not None:
        return wrong_passphrase(ctx.profile)
    if isinstance(exc, MalformedAnswerError):
        return CliError(
            f"the server's answer is not the API's ({exc.message})",
            "check that server and client are of the same version; if they are, do not trust "
            "this server and tell the admin",
        )
    if isinstance(exc, ApiError):
        return CliError(f"the server refused: {exc}", _api_hint(exc))
    if isinstance(exc, payloads.ContentError):
        return usage(str(exc), "check the command's arguments (`opseal COMMAND --help`)")
    if isinstance(exc, (IntegrityWarning, AuditError, AttachmentRefused)):
        return CliError(
            str(exc), "do not trust what this server shows; tell your coordinator and the admin"
        )
    if isinstance(exc, CryptoError):
        return CliError(f"verification failed: {exc}", "do not trust the data; report it")
    if isinstance(exc, ClientError):
        return CliError(str(exc), _client_hint(str(exc)))
    if isinstance(exc, OSError):
        return usage(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), "check the path")
    return CliError(
        f"unexpected error: {type(exc).__name__}: {exc}",
        "rerun with --debug and report the traceback",
    )


def _server(ctx: Ctx | None) -> str:
    if ctx is not None and getattr(ctx.args, "server", None):
        return f" at {ctx.args.server}"
    with contextlib.suppress(Exception):
        return f" at {ctx.profile.info().server}" if ctx is not None else ""
    return ""


def _api_hint(exc: ApiError) -> str:
    if isinstance(exc, ConflictError):
        return "the server holds another message with this id (sent from another device?)"
    if isinstance(exc, UnauthorizedError):
        return "this device may be revoked or its code spent; ask your focal point"
    if isinstance(exc, ForbiddenError):
        return "the operation's charter or phase does not allow this for your organisation"
    if isinstance(exc, NotFoundError):
        return "check the id (`opseal op list`, `opseal read`)"
    if isinstance(exc, RateLimitedError):
        return "wait a minute and retry"
    return "check the command, or ask the instance admin if it persists"


def _client_hint(message: str) -> str:
    if "not a member" in message:
        return "join with `opseal op join`, wait to be admitted, then `opseal sync`"
    if "not pinned" in message:
        return "run `opseal op join OP --root-key KEY` with the key from your invitation"
    if "https" in message:
        return "use an https:// URL (or --allow-http on a trusted network)"
    return "see `opseal --help`"
