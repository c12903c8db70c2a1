"""Error explanation: the one-line report, hint and exit code for any failure."""

from __future__ import annotations

import contextlib

from opseal.crypto.errors import CryptoError, WrongPassphrase
from opseal.wire.errors import ERRORS

from .. import content as payloads
from ..attachments import AttachmentRefused
from ..audit import AuditError
from ..client import IntegrityWarning
from ..errors import (
    ApiError,
    ClientError,
    ConflictError,
    MalformedAnswerError,
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
        return CliError(f"the server refused: {exc}", api_hint(exc, _focal_point(ctx)))
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


def _focal_point(ctx: Ctx | None) -> bool:
    """Whether this profile holds its organisation's root key (its focal point)."""
    with contextlib.suppress(Exception):
        return ctx is not None and ctx.profile.has_key("org-root")
    return False


def api_hint(exc: ApiError, focal_point: bool = False) -> str:
    """What to do about a refusal: a precise hint where the refusal says enough, else its
    code's hint from :data:`opseal.wire.errors.ERRORS`."""
    message = exc.message
    if isinstance(exc, ConflictError) and message.startswith("phase:"):
        return "phases only move forward (`opseal op show OP` shows the current one)"
    if isinstance(exc, ConflictError) and message.startswith("device "):
        return "this device name is taken in your organisation: choose another --device"
    if message.startswith("organisation: this enrolment code was issued for"):
        org = exc.details.get("expected", "the organisation it names")
        return f"run the command again with --org {org}"
    if isinstance(exc, UnauthorizedError) and message.startswith("enrolment code"):
        return "enrolment codes are used once and expire: ask for a new one"
    entry = ERRORS.get(exc.code)
    hint = entry.hint if entry is not None and entry.hint else ERRORS["internal"].hint
    if focal_point:  # a focal point has no focal point to ask
        hint = hint.replace(
            "ask your focal point", "as focal point, re-enrol it with your root key"
        ).replace("its focal point issues a new one", "as focal point, enrol a new device")
    return hint


def _client_hint(message: str) -> str:
    if "not a member" in message:
        return "join with `opseal op join`, wait to be admitted, then `opseal sync`"
    if "not pinned" in message:
        return "run `opseal op join --invitation FILE` with the invitation you were sent"
    if "https" in message:
        return "use an https:// URL (or --allow-http on a trusted network)"
    return "see `opseal --help`"
