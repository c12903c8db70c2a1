"""One ``opseal`` invocation (:class:`Ctx`): its arguments, output, profile, passphrase and
client; the argument parsers for times; and the helpers several command groups share."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import getpass
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from opseal.crypto.errors import CryptoError, WrongPassphrase

from .. import agent
from ..errors import (
    ClientError,
    RateLimitedError,
    Refusal,
    TransportError,
    UnauthorizedError,
    UnavailableError,
)
from ..profile import Profile
from .codes import UNREACHABLE, CliError, usage
from .render import Out

if TYPE_CHECKING:  # the client loads when a command opens it, so `opseal --help` stays fast
    from opseal.crypto.charter import Charter
    from opseal.crypto.keys import KdfParams

    from ..client import Client, SyncReport
    from ..store import StoredMessage

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
    queued: int = 0  # submissions pending in the outbox when the client closed
    connected: bool = False  # logged in and synced by connect()
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
        from asyncio import to_thread

        from ..client import Client

        info = self.profile.info()  # a missing profile says so before asking for a passphrase
        keys = await to_thread(agent.device_keys, self.profile.path, info.device_id)
        try:
            passphrase = None if keys is not None else self.passphrase()
            client = await Client.open(self.profile, passphrase, login=False, keys=keys)
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
            with contextlib.suppress(Exception):  # told on Ctrl-C: what stays queued
                self.queued = client.store.outbox_pending_count()
            await client.close()

    @property
    def retry_for(self) -> float:
        return float(getattr(self.args, "retry_for", 60.0))

    def countdown(self, wait: float, left: float, error: TransportError) -> None:
        """What an unreachable server means for this run, before each wait (on stderr)."""
        until = "Ctrl-C to stop" if left == float("inf") else f"giving up in {left:.0f} s"
        print(
            f"opseal: the server is unreachable ({error}); "
            f"retrying in {round(wait, 1):g} s ({until})",
            file=sys.stderr,
            flush=True,
        )

    def unreachable(self, client: Client, error: TransportError) -> CliError:
        queued = client.store.outbox_pending_count()
        return CliError(
            f"cannot reach the server at {client.info.server}"
            + (f" for {self.retry_for:g} s" if self.retry_for > 0 else "")
            + f" ({error}); {queued} queued",
            "re-run or `opseal sync` when it answers (`opseal outbox` shows what waits)",
            UNREACHABLE,
        )

    async def connect(self, client: Client, *, wait: bool = True) -> bool:
        """Log in and sync, retrying an unreachable server for --retry-for seconds (exit 3
        after). Without ``wait``, one try: False when the server is unreachable."""
        from ..outbox import retrying

        if self.connected:
            return True

        async def attempt() -> None:
            try:
                await client.login()
                await self.sync(client)
            except (UnavailableError, RateLimitedError) as exc:  # a restarting server
                raise TransportError(str(exc)) from exc

        try:
            await retrying(attempt, self.retry_for if wait else 0, self.countdown)
        except TransportError as exc:
            if not wait:
                return False
            raise self.unreachable(client, exc) from exc
        self.connected = True
        return True

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


def require_joined(client: Client, op: str) -> None:
    """Refuse a command about an operation this device has not joined (no pinned root)."""
    if client.store.pin(op) is None:
        raise CliError(
            f"this device has not joined operation {op!r}",
            "see `opseal op list`, then `opseal op join --invitation FILE`",
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
    may_post(await client.charter(op), client.org_id, op, area)


def may_post(charter: Charter, org: str, op: str, area: str) -> None:
    """Refuse before sealing what the charter would refuse: a refused item blocks the outbox."""
    try:
        charter.area(area)
        charter.check_may_post(org, area)
    except CryptoError as exc:
        raise CliError(str(exc), f"see who may post where with `opseal op charter {op}`") from exc


async def queue_first(ctx: Ctx, client: Client, op: str, area: str, make: Callable[[], T]) -> T:
    """Put a submission in the outbox before the server is asked anything (``make()`` seals
    and queues it), so an unreachable server loses nothing. A device that has not yet the
    area's verified state connects first."""
    charter = client.stored_charter(op)
    if charter is None or client.store.latest_state(op, area) is None:
        await ctx.connect(client)
        charter = await client.charter(op)
    may_post(charter, client.org_id, op, area)
    return make()


async def send(
    client: Client,
    ctx: Ctx,
    message_ids: Sequence[str] = (),
    progress: Callable[[int], None] | None = None,
) -> tuple[int, list[Refusal]]:
    """Flush the outbox (a countdown on stderr while the server is unreachable); returns how
    many were sent and which of ``message_ids`` the server refused. Unreachable past
    --retry-for: exit 3 naming what stays queued."""
    try:
        sent = await client.flush(deadline=ctx.retry_for, progress=progress, on_wait=ctx.countdown)
    except TransportError as exc:
        raise ctx.unreachable(client, exc) from exc
    return sent, client.refusals(message_ids)


def refusal_json(r: Refusal) -> dict[str, str]:
    return {"message_id": r.message_id, "op": r.op, "area": r.area, "code": r.code,
            "message": r.message}  # fmt: skip


def report_refused(
    ctx: Ctx, refused: Sequence[Refusal], names: Mapping[str, str] | None = None
) -> None:
    """Each refusal on stderr, then the one-line failure (the command exits 1)."""
    for r in refused:
        name = f"{names[r.message_id]} " if names and r.message_id in names else ""
        ctx.out.warn(f"refused: {name}({r.message_id}, {r.op}/{r.area}): {r.code}: {r.message}")
    from opseal.wire.errors import ERRORS  # not for `opseal --help` (msgspec)

    codes = sorted({r.code for r in refused})
    entry = ERRORS.get(codes[0]) if len(codes) == 1 else None
    ctx.out.fail(
        f"the server refused {len(refused)} submission(s) ({', '.join(codes)}); "
        "they were not sent and stay in `opseal outbox` as refused",
        entry.hint if entry is not None and entry.hint else "see `opseal outbox`",
    )
