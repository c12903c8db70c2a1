"""One ``opseal`` invocation (:class:`Ctx`): its arguments, output, profile, passphrase and
client; the argument parsers for times; and the helpers several command groups share."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import getpass
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from opseal.crypto.errors import CryptoError, WrongPassphrase
from opseal.crypto.keys import KdfParams

from ..client import Client, SyncReport
from ..errors import ClientError, TransportError, UnauthorizedError
from ..profile import Profile
from ..store import StoredMessage
from .codes import UNREACHABLE, CliError, usage
from .render import Out

T = TypeVar("T")


# -- the invocation ---------------------------------------------------------------------------
@dataclass
class Ctx:
    """One invocation: its arguments, output, profile and passphrase."""

    args: argparse.Namespace
    out: Out
    profile: Profile
    kdf_params: KdfParams | None = None  # Argon2id cost for new key files (None: the default)
    fresh_warnings: int = 0
    seen_warning: int | None = None
    shown_warnings: set[int] = field(default_factory=set)
    _passphrase: str | None = field(default=None, repr=False)

    def passphrase(self, *, new: bool = False) -> str:
        """The passphrase from --passphrase-file, OPSEAL_PASSPHRASE or a prompt."""
        if self._passphrase is None:
            self._passphrase = self._read_passphrase(new)
        return self._passphrase

    def _read_passphrase(self, new: bool) -> str:
        if self.args.passphrase_file:
            try:
                text = Path(self.args.passphrase_file).read_text().rstrip("\r\n")
            except OSError as exc:
                message = f"cannot read --passphrase-file: {exc.strerror}"
                raise usage(message, "check the path") from exc
            if not text:
                raise usage("the --passphrase-file is empty", "put the passphrase in it")
            return text
        if os.environ.get("OPSEAL_PASSPHRASE"):
            return os.environ["OPSEAL_PASSPHRASE"]
        if not sys.stdin.isatty():
            raise usage(
                "no passphrase given and no terminal to ask on",
                "use --passphrase-file FILE or set OPSEAL_PASSPHRASE",
            )
        return prompt_passphrase(self.profile.name, new)

    @contextlib.asynccontextmanager
    async def client(self, *, login: bool = True, sync: bool = False) -> AsyncIterator[Client]:
        """The profile's client, logged in (and synced) as the command needs."""
        self.profile.info()  # a missing profile says so before asking for a passphrase
        try:
            client = await Client.open(self.profile, self.passphrase(), login=False)
        except WrongPassphrase as exc:
            raise wrong_passphrase(self.profile) from exc
        try:
            if login:  # here, so that a failed login still closes the client
                await client.login()
                remember_login(client)
            if sync:
                await self.sync(client)
            yield client
        finally:
            await client.close()

    async def sync(self, client: Client) -> SyncReport:
        """Sync, and report the integrity warnings it recorded."""
        before = last_warning(client)
        report = await client.sync()
        fresh = client.warnings(before)
        self.out.warnings(fresh)
        self.shown_warnings.update(w[0] for w in fresh)
        self.fresh_warnings += len(fresh)
        return report


TOKEN_KEY = "session-token"  # noqa: S105 -- the store key it lives under, not a secret


def remember_login(client: Client) -> None:
    """Keep the bearer token, sealed in the store, for commands that should not log in."""
    if client.api.token:
        client.store.put(TOKEN_KEY, client.store.seal(client.api.token.encode(), TOKEN_KEY))


async def reusing_login(client: Client, call: Callable[[], Awaitable[T]]) -> T:
    """``call()`` with the token of an earlier command, logging in only when there is none
    or the server refuses it: a login is an audit entry, and reading the log should not grow
    it."""
    sealed = client.store.get(TOKEN_KEY)
    token = None
    if sealed is not None:
        with contextlib.suppress(ClientError, UnicodeDecodeError):
            token = client.store.open(sealed, TOKEN_KEY).decode()
    if token:
        client.api.token = token
        with contextlib.suppress(UnauthorizedError):
            return await call()
    await client.login()
    remember_login(client)
    return await call()


def prompt_passphrase(profile: str, new: bool) -> str:
    first = getpass.getpass(f"Passphrase for profile {profile!r}: ")
    if new and getpass.getpass("Repeat the passphrase: ") != first:
        raise usage("the two passphrases differ", "run the command again")
    if not first:
        raise usage("an empty passphrase is not allowed", "choose a passphrase")
    return first


def wrong_passphrase(profile: Profile) -> CliError:
    return usage(
        f"the passphrase does not open profile {profile.name!r}",
        "check --passphrase-file or OPSEAL_PASSPHRASE (or retype it)",
    )


def last_warning(client: Client) -> int:
    warnings = client.warnings()
    return warnings[-1][0] if warnings else 0


def confirm(ctx: Ctx, question: str, *, required: bool = False) -> None:
    """Ask before an irreversible step when someone is at the terminal (skip with --yes).
    ``required``: without a terminal (or with --json) and without --yes, refuse (exit 2)
    rather than go ahead unasked."""
    if getattr(ctx.args, "yes", False):
        return
    if ctx.args.json or not sys.stdin.isatty():
        if not required:
            return
        raise usage(
            f"not confirmed: {question} (no terminal to ask on, or --json)",
            "add --yes to confirm it in a script; nothing was changed",
        )
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise usage("stopped at your request", "nothing was changed")


# -- arguments that are times -------------------------------------------------------------------
def parse_time(text: str, what: str, *, end_of_day: bool = False) -> int:
    """Seconds since the epoch from YYYY-MM-DD (UTC; the day's end if ``end_of_day``), an ISO
    time (UTC unless it says otherwise), or a number of seconds."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            moment = dt.datetime.combine(day, dt.time.max if end_of_day else dt.time.min)
        else:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise usage(
            f"{what} {text!r} is not a date", "use YYYY-MM-DD or 2025-05-12T08:00Z"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp())


def parse_day(text: str, what: str) -> str:
    """A calendar date written YYYY-MM-DD."""
    try:
        return dt.date.fromisoformat(text.strip()).isoformat()
    except ValueError as exc:
        raise usage(f"{what} {text!r} is not a date", "write it as YYYY-MM-DD") from exc


# -- helpers the commands share --
def verified(client: Client, message_id: str) -> StoredMessage:
    message = client.store.message(message_id)
    if message is None:
        raise CliError(
            f"message {message_id} is not among this device's verified messages",
            "check the id (`opseal read`), or whether your organisation reads that area",
        )
    return message


async def check_may_post(client: Client, op: str, area: str) -> None:
    """Refuse before sealing what the charter would refuse: a refused item blocks the outbox."""
    charter = await client.charter(op)
    try:
        charter.area(area)
        charter.check_may_post(client.org_id, area)
    except CryptoError as exc:
        raise CliError(str(exc), f"see who may post where with `opseal op charter {op}`") from exc


async def send(client: Client, ctx: Ctx, progress: Callable[[int], None] | None = None) -> int:
    """Flush the outbox; an unreachable server leaves it queued (exit 3 with a hint)."""
    try:
        return await client.flush(deadline=ctx.args.retry_for, progress=progress)
    except TransportError as exc:
        raise CliError(
            f"the server is unreachable, the submission is queued in the outbox ({exc})",
            "run `opseal sync` later to send it; `opseal outbox` shows what waits",
            UNREACHABLE,
        ) from exc
