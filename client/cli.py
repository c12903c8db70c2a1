"""``opseal``: the command line of an OpSeal device (design §10).

Every command works on one profile (``--home``/``--profile``), opens its keys with the
passphrase (``--passphrase-file``, ``OPSEAL_PASSPHRASE`` or a prompt), syncs first where it
reads, and prints for people — or, with ``--json``, one JSON document on stdout for scripts
(``tail`` and ``admit --watch`` print one JSON object per line). Progress bars go to stderr.

Errors a person can act on are one line, ``opseal: <what happened>; <what to do>``; tracebacks
only with ``--debug``. Exit codes are :data:`EXIT_CODES`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import getpass
import json
import os
import sys
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, NoReturn

from opseal.crypto.charter import HISTORY_POLICIES, ROLES, AreaPolicy, Charter, Member
from opseal.crypto.encoding import b64d, b64e
from opseal.crypto.errors import CryptoError, DecodeError, WrongPassphrase
from opseal.crypto.keys import KdfParams, SigningKey, VerifyKey

from . import content as payloads
from . import export, release
from .attachments import AttachmentRefused
from .audit import AuditError
from .client import Client, IntegrityWarning, SyncReport
from .errors import (
    ApiError,
    ClientError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
    TransportError,
    UnauthorizedError,
)
from .profile import DEFAULT_HOME, Profile, ProfileError
from .report import aggregate, checked_records
from .report_render import FORMATS as REPORT_FORMATS
from .report_render import render as render_report
from .seizures import (
    COLUMNS,
    REQUIRED_COLUMNS,
    RecordError,
    RowError,
    read_seizures,
    write_seizures_csv,
    write_seizures_xlsx,
)
from .store import StoredMessage

__all__ = ["EXIT_CODES", "main"]

OK, REFUSED, USAGE, UNREACHABLE, WARNINGS = 0, 1, 2, 3, 4
EXIT_CODES = {
    OK: "ok",
    REFUSED: "refused by the server, or something failed verification (or rows were rejected)",
    USAGE: "usage or configuration error (arguments, profile, passphrase, input file)",
    UNREACHABLE: "the server could not be reached (queued submissions stay in the outbox)",
    WARNINGS: "integrity warnings were found (refused entries, possibly missing messages)",
}
WARNINGS_SHOWN = 20
"""Integrity warnings printed in full per command; the rest are counted."""
WarningRow = tuple[int, str, str, int | None, str, str]
"""A stored integrity warning: id, operation, area, sequence, kind, message."""
KDF_PARAMS: KdfParams | None = None
"""Argon2id cost for new key files (None: the crypto core's default). Tests lower it."""

PHASES = ("preparation", "active", "follow-up", "closed", "archived")
HANDLING = ("H0", "H1", "H2", "H3")
DEFAULT_AREAS = (
    AreaPolicy("plan", frozenset({"coordinator", "customs", "partner", "observer"}),
               frozenset({"coordinator"}), "shared"),
    AreaPolicy("seizures", frozenset({"coordinator", "customs", "partner", "observer"}),
               frozenset({"coordinator", "customs"}), "shared"),
    AreaPolicy("alerts", frozenset({"coordinator", "customs", "partner"}),
               frozenset({"coordinator", "customs", "partner"}), "shared"),
    AreaPolicy("stakeholders", frozenset(ROLES), frozenset({"coordinator", "stakeholder"}),
               "shared"),
)  # fmt: skip


class CliError(Exception):
    """A failure to report as ``opseal: <message>; <hint>`` with exit code ``code``."""

    def __init__(self, message: str, hint: str = "", code: int = REFUSED) -> None:
        super().__init__(message)
        self.message, self.hint, self.code = message, hint, code


def usage(message: str, hint: str = "see `opseal COMMAND --help`") -> CliError:
    return CliError(message, hint, USAGE)


# -- output ---------------------------------------------------------------------------------
class Out:
    """Human text or JSON on stdout; notes and warnings on stderr."""

    def __init__(self, as_json: bool) -> None:
        self.json = as_json
        self.answered = False  # with --json, stdout holds one document: the answer or the error

    def result(self, data: Any, text: str | Iterable[str] = ()) -> None:
        """The command's answer: ``data`` as JSON, or ``text`` for people."""
        self.answered = True
        if self.json:
            print(json.dumps(data, indent=2, sort_keys=True, default=str), flush=True)
            return
        lines = [text] if isinstance(text, str) else list(text)
        for line in lines:
            print(line, flush=True)

    def line(self, data: Any, text: str) -> None:
        """One item of a stream (``tail``, ``admit --watch``): a JSON line or a text line."""
        print(json.dumps(data, sort_keys=True, default=str) if self.json else text, flush=True)

    def fail(self, message: str, hint: str, code: int = REFUSED) -> None:
        """The one-line report of a failure (and, with --json and no answer yet, its JSON)."""
        print(f"opseal: {message}; {hint}", file=sys.stderr, flush=True)
        if self.json and not self.answered:
            error = {"exit_code": code, "message": message, "hint": hint}
            print(json.dumps({"error": error}), flush=True)

    def note(self, text: str) -> None:
        if not self.json:
            print(text, file=sys.stderr, flush=True)

    def warn(self, text: str) -> None:
        print(f"opseal: warning: {text}", file=sys.stderr, flush=True)

    def warnings(self, warnings: Sequence[WarningRow]) -> None:
        """Integrity warnings, the first :data:`WARNINGS_SHOWN` in full, then a count by kind."""
        for w in warnings[:WARNINGS_SHOWN]:
            self.warn(warning_text(w))
        rest = warnings[WARNINGS_SHOWN:]
        if rest:
            kinds = Counter(w[4] for w in rest)
            counts = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
            self.warn(f"... and {len(rest)} more ({counts}); `opseal --json read OP` lists them")

    def progress(self, total: int | None, what: str, unit: str = "it") -> Any:
        """A progress bar on stderr (hidden when stderr is not a terminal, or with --json)."""
        from tqdm import tqdm

        return tqdm(
            total=total,
            desc=what,
            unit=unit,
            unit_scale=unit == "B",
            file=sys.stderr,
            disable=True if self.json else None,
            leave=False,
        )


def when(seconds: float | None) -> str:
    if not seconds:
        return "-"
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> list[str]:
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]


# -- the invocation ---------------------------------------------------------------------------
@dataclass
class Ctx:
    """One invocation: its arguments, output, profile and passphrase."""

    args: argparse.Namespace
    out: Out
    profile: Profile
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
        return _prompt_passphrase(self.profile.name, new)

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
            if sync:
                await self.sync(client)
            yield client
        finally:
            await client.close()

    async def sync(self, client: Client) -> SyncReport:
        """Sync, and report the integrity warnings it recorded."""
        before = _last_warning(client)
        report = await client.sync()
        fresh = client.warnings(before)
        self.out.warnings(fresh)
        self.shown_warnings.update(w[0] for w in fresh)
        self.fresh_warnings += len(fresh)
        return report


def _prompt_passphrase(profile: str, new: bool) -> str:
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


def _last_warning(client: Client) -> int:
    warnings = client.warnings()
    return warnings[-1][0] if warnings else 0


def confirm(ctx: Ctx, question: str) -> None:
    """Ask before an irreversible step when someone is at the terminal (skip with --yes)."""
    if getattr(ctx.args, "yes", False) or ctx.args.json or not sys.stdin.isatty():
        return
    if input(f"{question} [y/N] ").strip().lower() not in ("y", "yes"):
        raise usage("stopped at your request", "nothing was changed")


# -- the command table ------------------------------------------------------------------------
Handler = Callable[[Ctx], Coroutine[Any, Any, int | None]]


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]
    summary: str
    handler: Handler
    arguments: tuple[tuple[tuple[str, ...], dict[str, Any]], ...]
    follows: bool = False  # runs until Ctrl-C, which is then a normal end


COMMANDS: list[Command] = []


def arg(*names: str, **options: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    return names, options


def command(
    name: str, summary: str, *arguments: tuple[tuple[str, ...], dict[str, Any]], follows=False
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        COMMANDS.append(Command(tuple(name.split()), summary, handler, arguments, follows))
        return handler

    return register


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors in the one-line ``opseal: ...; ...`` form (exit 2)."""

    def error(self, message: str) -> NoReturn:
        print(f"opseal: {message}; see `{self.prog} --help`", file=sys.stderr)
        raise SystemExit(USAGE)


def _epilog() -> str:
    width = max(len(" ".join(c.path)) for c in COMMANDS) + 2
    lines = ["commands:"]
    lines += [f"  {' '.join(c.path).ljust(width)}{c.summary}" for c in COMMANDS]
    lines += ["", "exit codes:"]
    lines += [f"  {code}  {meaning}" for code, meaning in EXIT_CODES.items()]
    lines += ["", "Run `opseal COMMAND --help` for a command's options."]
    return "\n".join(lines)


def _global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The options every command takes, before or after its name."""
    # Below the top level they default to SUPPRESS, so they do not undo what was given above.
    keep: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    flag: dict[str, Any] = {"action": "store_true", **({"default": False} if top else keep)}
    add = (parser if top else parser.add_argument_group("global options")).add_argument
    add("--home", help="profiles folder (default $OPSEAL_HOME or ~/.opseal)", **keep)
    add("--profile", help='profile name (default $OPSEAL_PROFILE or "default")', **keep)
    add("--passphrase-file", metavar="FILE", help="read the passphrase from FILE", **keep)
    add("--json", help="machine-readable output on stdout", **flag)
    add("--debug", help="show tracebacks of failures", **flag)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="opseal",
        description="OpSeal: the end-to-end encrypted closed user group of an operation.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"opseal {version('opseal')}")
    _global_options(parser, top=True)
    common = Parser(add_help=False)
    _global_options(common, top=False)
    groups: dict[str, argparse._SubParsersAction] = {}
    root = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, help="one of the commands below"
    )
    for cmd in COMMANDS:
        sub = root
        for depth, word in enumerate(cmd.path[:-1]):
            key = " ".join(cmd.path[: depth + 1])
            if key not in groups:
                group = sub.add_parser(word, prog=f"opseal {key}")
                groups[key] = group.add_subparsers(
                    dest=f"sub{depth}", required=True, metavar="COMMAND", title="commands"
                )
            sub = groups[key]
        listed: dict[str, Any] = (
            {"help": cmd.summary} if len(cmd.path) > 1 else {}
        )  # top level: the epilog
        p = sub.add_parser(cmd.path[-1], description=cmd.summary, parents=[common], **listed)
        for names, options in cmd.arguments:
            p.add_argument(*names, **options)
        p.set_defaults(command_spec=cmd)
    return parser


OP = arg("op", metavar="OP", help="operation id")
AREA = arg("area", metavar="AREA", help="area name, e.g. plan, seizures")
MESSAGE_ID = arg("message_id", metavar="MESSAGE_ID", help="a message id (see `opseal read`)")


# -- onboarding -------------------------------------------------------------------------------
@command("org keygen", "create the organisation root key (focal point)")
async def org_keygen(ctx: Ctx) -> None:
    if ctx.profile.has_key("org-root"):
        raise usage(
            f"profile {ctx.profile.name!r} already holds an organisation root key",
            "keep it; use another --profile to create a new one",
        )
    root = SigningKey.generate()
    ctx.profile.save_root(root, ctx.passphrase(new=True), KDF_PARAMS)
    fingerprint = root.verify_key.fingerprint
    ctx.out.result(
        {
            "profile": ctx.profile.name,
            "fingerprint": fingerprint,
            "root_key": b64e(root.verify_key.raw),
        },
        [
            f"Organisation root key created in {ctx.profile.path}",
            f"  fingerprint: {fingerprint}",
            f"  public key:  {b64e(root.verify_key.raw)}",
            "Give the fingerprint out of band (e.g. on the nomination letter), keep the",
            "passphrase safe, then run `opseal enrol` with your enrolment code.",
        ],
    )


@command(
    "enrol",
    "enrol this device with a one-time code (after `org keygen`)",
    arg("--server", required=True, metavar="URL", help="the instance, e.g. https://opseal.example"),
    arg("--code", required=True, help="the one-time enrolment code from the instance admin"),
    arg("--org", required=True, help="your organisation id"),
    arg("--user", required=True, help="your user id"),
    arg("--device", required=True, help="a name for this device (unique on the instance)"),
    arg("--kind", choices=("person", "service"), default="person", help="person or service"),
    arg("--name", default="", help="display name of the user"),
    arg("--root-profile", metavar="NAME", help="profile holding the org root (default: this one)"),
    arg("--ca-bundle", metavar="FILE", default="", help="CA certificates to trust for TLS"),
    arg("--allow-http", action="store_true", help="allow plain http to a non-loopback server"),
)
async def enrol(ctx: Ctx) -> None:
    a = ctx.args
    if ctx.profile.exists:
        raise usage(
            f"profile {ctx.profile.name!r} is already enrolled",
            "use another --profile for another device",
        )
    if a.ca_bundle and not Path(a.ca_bundle).is_file():
        raise usage(
            f"--ca-bundle {a.ca_bundle}: no such file", "give a PEM file of CA certificates"
        )
    root = _load_root(ctx, a.root_profile)
    client = await Client.enrol(
        ctx.profile,
        server=a.server,
        code=a.code.strip(),
        passphrase=ctx.passphrase(),
        root=root,
        org_id=a.org,
        user_id=a.user,
        device_id=a.device,
        user_kind=a.kind,
        name=a.name,
        ca_bundle=str(Path(a.ca_bundle).resolve()) if a.ca_bundle else "",
        allow_http=a.allow_http,
        params=KDF_PARAMS,
    )
    await client.close()
    info = client.info
    log_fp = VerifyKey(b64d(info.log_key)).fingerprint
    ctx.out.result(
        {
            "profile": ctx.profile.name,
            "server": info.server,
            "instance_id": info.instance_id,
            "org_id": info.org_id,
            "user_id": info.user_id,
            "device_id": info.device_id,
            "root_fingerprint": root.verify_key.fingerprint,
            "log_key_fingerprint": log_fp,
        },
        [
            f"Enrolled {info.user_id} ({info.user_kind}) of {info.org_id} "
            f"as device {info.device_id} on {info.server}",
            f"  organisation root fingerprint: {root.verify_key.fingerprint}",
            f"  audit log key fingerprint:     {log_fp}",
            "Next: `opseal op list` to see the operations your organisation is invited to.",
        ],
    )


def _load_root(ctx: Ctx, root_profile: str | None) -> SigningKey:
    holder = Profile(root_profile, ctx.profile.path.parent) if root_profile else ctx.profile
    if not holder.has_key("org-root"):
        raise usage(
            f"profile {holder.name!r} holds no organisation root key",
            "run `opseal org keygen` in it first (or give --root-profile)",
        )
    try:
        # a device enrolled from another profile's root gets a passphrase of its own: confirm it
        return holder.load_root(ctx.passphrase(new=holder is not ctx.profile))
    except WrongPassphrase as exc:
        if holder is ctx.profile or not sys.stdin.isatty():
            raise wrong_passphrase(holder) from exc
    try:
        return holder.load_root(_prompt_passphrase(holder.name, new=False))
    except WrongPassphrase as exc:
        raise wrong_passphrase(holder) from exc


@command("whoami", "show this device's organisation, user, device and server")
async def whoami(ctx: Ctx) -> None:
    async with ctx.client() as client:
        me = await client.api.whoami()
        org = await client.api.organisation(client.org_id)
    data = {
        **me,
        "profile": ctx.profile.name,
        "server": client.info.server,
        "instance_id": client.info.instance_id,
        "root_fingerprint": org.get("fingerprint"),
    }
    ctx.out.result(
        data,
        [
            f"{me['user_id']} ({me['user_kind']}) of {me['org_id']}, device {me['device_id']}",
            f"  server:   {client.info.server} (instance {client.info.instance_id})",
            f"  profile:  {ctx.profile.path}",
            f"  organisation root fingerprint (as registered): {org.get('fingerprint')}",
        ],
    )


# -- operations -------------------------------------------------------------------------------
@command("op list", "list the operations your organisation is invited to")
async def op_list(ctx: Ctx) -> None:
    async with ctx.client() as client:
        ops = await client.api.operations()
        for op in ops:
            op["joined"] = client.store.pin(op["operation_id"]) is not None
    rows = [
        (o["operation_id"], o["code"], o["phase"], o["role"], o["coordinator_org"],
         "yes" if o["joined"] else "no", o["name"])
        for o in ops
    ]  # fmt: skip
    text = table(rows, ("OPERATION", "CODE", "PHASE", "ROLE", "COORDINATOR", "JOINED", "NAME"))
    ctx.out.result({"operations": ops}, text if ops else "No operations yet.")


@command("op show", "show an operation and this device's areas in it", OP)
async def op_show(ctx: Ctx) -> None:
    async with ctx.client(sync=True) as client:
        op = await client.api.operation(ctx.args.op)
        for area in op["areas"]:
            area.update(_local_area(client, ctx.args.op, area["area"]))
    op["joined"] = any(a["member"] for a in op["areas"])
    rows = [
        (a["area"], a["epoch"], a["last_seq"], "yes" if a["member"] else "no", a["position"])
        for a in op["areas"]
    ]
    ctx.out.result(
        op,
        [
            f"{op['code']} — {op['name']} ({op['operation_id']})",
            f"  phase {op['phase']}, {when(op['starts_at'])} to {when(op['ends_at'])}, "
            f"charter v{op['charter_version']}, your role: {op['role']}",
            *table(rows, ("AREA", "EPOCH", "LAST SEQ", "MEMBER", "READ UP TO")),
        ],
    )


def _local_area(client: Client, op: str, area: str) -> dict[str, Any]:
    latest = client.store.latest_state(op, area)
    member = latest is not None and client.store.secret(op, area, latest[0]) is not None
    return {"member": member, "position": client.store.position(op, area)}


@command(
    "op create",
    "sign and publish a new operation's charter (coordinator)",
    arg("--id", required=True, dest="op_id", help="operation id, e.g. op-stop-v"),
    arg("--code", required=True, help='short code, e.g. "STOP V"'),
    arg("--name", required=True, help='full name, e.g. "Operation STOP V"'),
    arg("--start", required=True, help="start date (YYYY-MM-DD, UTC) or ISO time"),
    arg("--end", required=True, help="end date (inclusive) or ISO time"),
    arg("--member", action="append", default=[], metavar="ORG:ROLE",
        help=f"a member organisation and its role ({', '.join(ROLES)}); repeat"),
    arg("--area", action="append", default=[], metavar="NAME:READ_ROLES:POST_ROLES:HISTORY",
        help="an area; roles comma-separated, history shared or since-join; repeat "
        "(default: plan, seizures, alerts, stakeholders)"),
    arg("--retention-days", type=int, default=365, help="keep the data this long after closing"),
    arg("--yes", action="store_true", help="do not ask before publishing"),
)  # fmt: skip
async def op_create(ctx: Ctx) -> None:
    a = ctx.args
    roles = _parse_members(a.member)
    areas = tuple(_parse_area(text) for text in a.area) or DEFAULT_AREAS
    starts, ends = parse_time(a.start, "--start"), parse_time(a.end, "--end", end_of_day=True)
    async with ctx.client() as client:
        roles.setdefault(client.org_id, "coordinator")
        members = [await _member(client, org, role) for org, role in roles.items()]
        _show_members(ctx, members)
        confirm(ctx, "Are these the fingerprints on the nomination letters? Publish the charter?")
        try:
            draft = Charter.create(
                operation_id=a.op_id,
                code=a.code,
                name=a.name,
                starts_at=starts,
                ends_at=ends,
                members=members,
                areas=areas,
                issued_at=client.now() - 5,
            )
        except CryptoError as exc:
            raise usage(str(exc), "see `opseal op create --help`") from exc
        user_key, _ = ctx.profile.load_user(ctx.passphrase())
        charter = await client.create_operation(draft, user_key, a.retention_days)
    ctx.out.result(
        _charter_json(charter),
        [
            f"Operation {charter.code} ({charter.operation_id}) created: charter v1 published "
            f"and {len(charter.areas)} areas created.",
            "Members join with: opseal op join "
            f"{charter.operation_id} --root-key={b64e(charter.member(client.org_id).root_key.raw)}",
            "Admit them as they ask: opseal admit --watch",
        ],
    )


def _parse_members(specs: list[str]) -> dict[str, str]:
    roles: dict[str, str] = {}
    for spec in specs:
        org, sep, role = spec.rpartition(":")
        if not sep or not org or role not in ROLES:
            raise usage(
                f"--member {spec!r}: expected ORG:ROLE", f"ROLE is one of {', '.join(ROLES)}"
            )
        if org in roles:
            raise usage(f"--member {org!r} is given twice", "list each organisation once")
        roles[org] = role
    return roles


def _parse_area(spec: str) -> AreaPolicy:
    parts = spec.split(":")
    if len(parts) not in (3, 4) or not parts[0]:
        raise usage(
            f"--area {spec!r}: expected NAME:READ_ROLES:POST_ROLES[:HISTORY]",
            "e.g. --area plan:coordinator,customs:coordinator:shared",
        )
    name, read, post = parts[:3]
    history = parts[3] if len(parts) == 4 else "shared"
    if history not in HISTORY_POLICIES:
        raise usage(f"--area {spec!r}: history {history!r}", f"use {' or '.join(HISTORY_POLICIES)}")
    try:
        return AreaPolicy(name, _roles(read), _roles(post), history)
    except DecodeError as exc:
        raise usage(f"--area {spec!r}: {exc}", "see `opseal op create --help`") from exc


def _roles(text: str) -> frozenset[str]:
    return frozenset(r.strip() for r in text.split(",") if r.strip())


async def _member(client: Client, org_id: str, role: str) -> Member:
    try:
        record = await client.api.organisation(org_id)
    except NotFoundError as exc:
        raise usage(f"organisation {org_id!r} is not registered on this instance",
                    "check the id with the instance admin") from exc  # fmt: skip
    if not record.get("root_key"):
        raise CliError(
            f"organisation {org_id!r} has not enrolled yet (no root key registered)",
            "ask its focal point to run `opseal org keygen` and `opseal enrol` first",
        )
    root = VerifyKey(b64d(record["root_key"], field="root_key"))
    return Member(org_id, record["name"], record["kind"], role, root)


def _show_members(ctx: Ctx, members: list[Member]) -> None:
    ctx.out.note("Member organisations and their root key fingerprints — check each one:")
    for m in members:
        ctx.out.note(f"  {m.organisation_id:<20} {m.role:<12} {m.fingerprint}")


@command(
    "op join",
    "accept an invitation: pin the coordinator's root key",
    OP,
    arg("--root-key", required=True, metavar="B64",
        help="the coordinator organisation's root public key, from the invitation"),
    arg("--yes", action="store_true", help="do not ask to confirm the fingerprint"),
)  # fmt: skip
async def op_join(ctx: Ctx) -> None:
    try:
        root = VerifyKey(b64d(ctx.args.root_key.strip(), field="--root-key"))
    except CryptoError as exc:
        raise usage(f"--root-key: {exc}", "paste the base64url key from the invitation") from exc
    ctx.out.note(f"Coordinator root key fingerprint: {root.fingerprint}")
    confirm(ctx, "Does it match the fingerprint in your invitation?")
    async with ctx.client() as client:
        areas = await client.join(ctx.args.op, root.key_id)
        charter = await client.charter(ctx.args.op)
    ctx.out.result(
        {
            "operation_id": charter.operation_id,
            "coordinator_fingerprint": root.fingerprint,
            "role": charter.role_of(client.org_id),
            "areas": areas,
        },
        [
            f"Joined {charter.code} ({charter.operation_id}) as {charter.role_of(client.org_id)}; "
            f"charter v{charter.version} verified from root {root.fingerprint}",
            f"Asked to join: {', '.join(areas) or 'no area'}",
            "A coordinator (or your organisation's device) admits you; then `opseal read`.",
        ],
    )


@command("op charter", "show the charter, verified from the pinned root key", OP)
async def op_charter(ctx: Ctx) -> None:
    async with ctx.client() as client:
        charter = await client.charter(ctx.args.op, refresh=True)
    ctx.out.result(_charter_json(charter), _charter_text(charter))


def _charter_json(c: Charter) -> dict[str, Any]:
    return {
        "operation_id": c.operation_id,
        "code": c.code,
        "name": c.name,
        "version": c.version,
        "starts_at": c.starts_at,
        "ends_at": c.ends_at,
        "issued_at": c.issued_at,
        "signed_by": None if c.signer is None else f"{c.signer.user_id}@{c.signer.organisation_id}",
        "members": [
            {"org_id": m.organisation_id, "name": m.name, "kind": m.kind, "role": m.role,
             "root_key": b64e(m.root_key.raw), "fingerprint": m.fingerprint}
            for m in c.members
        ],
        "areas": [
            {"area": a.name, "read": sorted(a.read_roles), "post": sorted(a.post_roles),
             "history": a.history}
            for a in c.areas
        ],
    }  # fmt: skip


def _charter_text(c: Charter) -> list[str]:
    data = _charter_json(c)
    members = [(m["org_id"], m["role"], m["fingerprint"], m["name"]) for m in data["members"]]
    areas = [(a["area"], ",".join(a["read"]), ",".join(a["post"]), a["history"])
             for a in data["areas"]]  # fmt: skip
    return [
        f"{c.code} — {c.name} ({c.operation_id}), charter v{c.version} (verified)",
        f"  {when(c.starts_at)} to {when(c.ends_at)}; signed by {data['signed_by']} "
        f"at {when(c.issued_at)}",
        *table(members, ("ORGANISATION", "ROLE", "ROOT FINGERPRINT", "NAME")),
        *table(areas, ("AREA", "READ", "POST", "HISTORY")),
    ]


@command(
    "op phase",
    "move an operation to its next phase (coordinator)",
    OP,
    arg("phase", choices=PHASES, metavar="PHASE", help=" -> ".join(PHASES)),
)
async def op_phase(ctx: Ctx) -> None:
    async with ctx.client() as client:
        answer = await client.api.set_phase(ctx.args.op, ctx.args.phase)
    ctx.out.result(answer, f"{ctx.args.op} is now in phase {ctx.args.phase}")


@command(
    "admit",
    "admit devices waiting to join (the charter decides)",
    arg("--op", help="only this operation"),
    arg("--watch", action="store_true", help="keep admitting until Ctrl-C"),
    arg("--interval", type=float, default=5.0, metavar="S", help="seconds between rounds"),
    follows=True,
)
async def admit(ctx: Ctx) -> None:
    async with ctx.client() as client:
        if not ctx.args.watch:
            admitted = sorted(set(await client.admit(ctx.args.op)))
            text = f"Admitted: {', '.join(admitted)}" if admitted else "Nobody is waiting."
            ctx.out.result({"admitted": admitted}, text)
            return
        ctx.out.note(f"Admitting every {ctx.args.interval:g} s; Ctrl-C to stop.")
        while True:
            for device in sorted(set(await client.admit(ctx.args.op))):
                ctx.out.line({"admitted": device}, f"{when(client.now())}  admitted {device}")
            await asyncio.sleep(ctx.args.interval)


# -- messages ---------------------------------------------------------------------------------
RETRY = arg(
    "--retry-for", type=float, default=60.0, metavar="S",
    help="keep retrying an unreachable server this long (the outbox keeps the rest)",
)  # fmt: skip


@command(
    "post",
    "post a text message to an area",
    OP,
    AREA,
    arg("--text", required=True, help="the message (Markdown); - reads it from stdin"),
    arg("--requires-ack", action="store_true", help="ask every organisation to acknowledge"),
    arg("--handling", choices=HANDLING, default="H0", help="handling code (default H0)"),
    RETRY,
)
async def post(ctx: Ctx) -> None:
    text = sys.stdin.read() if ctx.args.text == "-" else ctx.args.text
    if not text.strip():
        raise usage("--text is empty", "write the message, or pipe it with --text -")
    async with ctx.client(sync=True) as client:
        await check_may_post(client, ctx.args.op, ctx.args.area)
        [message_id] = client.enqueue(
            ctx.args.op,
            ctx.args.area,
            [("text", payloads.text(text))],
            handling=ctx.args.handling,
            requires_ack=ctx.args.requires_ack,
        )
        await send(client, ctx)
    ctx.out.result({"message_id": message_id}, f"Posted {message_id}")


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


@command(
    "read",
    "show the verified messages of an operation or area",
    OP,
    arg("area", nargs="?", metavar="AREA", help="one area (default: all)"),
    arg("--after", type=int, default=0, metavar="SEQ", help="only entries after this sequence"),
)
async def read(ctx: Ctx) -> int:
    op, area, after = ctx.args.op, ctx.args.area, ctx.args.after
    async with ctx.client(sync=True) as client:
        if client.store.pin(op) is None:
            raise CliError(
                f"this device has not joined operation {op!r}",
                "see `opseal op list`, then `opseal op join OP --root-key KEY`",
            )
        if area is not None:
            await _check_may_read(client, op, area)
        messages = client.read(op, area, after=after)
        warnings = [w for w in client.warnings() if _concerns(w, op, area, after)]
        gaps = _gaps(client, op, area)
    data = {
        "messages": [message_json(m) for m in messages],
        "warnings": [warning_json(w) for w in warnings],
        "gaps": gaps,
    }
    ctx.out.result(data, [message_text(m) for m in messages] or "No messages.")
    ctx.out.warnings([w for w in warnings if w[0] not in ctx.shown_warnings])
    for gap_area, senders in gaps.items():
        for sender, counters in senders.items():
            ctx.out.warn(f"{gap_area}: possibly missing messages {counters} from {sender}")
    return WARNINGS if warnings or gaps else OK


async def _check_may_read(client: Client, op: str, area: str) -> None:
    charter = await client.charter(op)
    try:
        charter.area(area)
        charter.check_may_read(client.org_id, area)
    except CryptoError as exc:
        raise CliError(str(exc), f"see who reads which area with `opseal op charter {op}`") from exc


def _gaps(client: Client, op: str, area: str | None) -> dict[str, dict[str, list[int]]]:
    areas = [a for o, a in client.store.areas() if o == op and area in (None, a)]
    return {a: gaps for a in areas if (gaps := client.gaps(op, a))}


def _concerns(w: WarningRow, op: str, area: str | None, after: int) -> bool:
    _id, w_op, w_area, seq, _kind, _msg = w
    return w_op == op and area in (None, w_area or area) and (seq is None or seq > after)


def message_json(m: StoredMessage) -> dict[str, Any]:
    try:
        content = m.json()
    except ValueError:
        content = m.plaintext.decode(errors="replace")
    return {
        "operation_id": m.op,
        "area": m.area,
        "seq": m.seq,
        "message_id": m.message_id,
        "sender": m.sender,
        "org": m.org,
        "epoch": m.epoch,
        "content_type": m.content_type,
        "handling": m.handling,
        "requires_ack": m.requires_ack,
        "client_time": m.client_time_ms / 1000,
        "content": redacted(content),
    }


def redacted(content: Any) -> Any:
    """``content`` with attachment file keys hidden: output may end up in logs, and
    `opseal download` reads the keys from the verified message itself."""
    if not isinstance(content, dict) or not isinstance(content.get("attachments"), list):
        return content
    hidden = [
        {**a, "file_key": "***"} if isinstance(a, dict) else a for a in content["attachments"]
    ]
    return {**content, "attachments": hidden}


def warning_text(w: WarningRow) -> str:
    _id, op, area, seq, kind, message = w
    return f"{op}/{area or '-'} #{seq or '-'} {kind}: {message}"


def warning_json(w: WarningRow) -> dict[str, Any]:
    return dict(zip(("id", "operation_id", "area", "seq", "kind", "message"), w, strict=True))


def message_text(m: StoredMessage) -> str:
    flags = " ".join(f for f in (m.handling, "ack-requested" if m.requires_ack else "") if f)
    head = f"[{m.area} #{m.seq}] {when(m.client_time_ms / 1000)} {m.org}/{m.sender} {flags}"
    return f"{head}\n  {m.content_type}: {summary(m)}\n  id {m.message_id}"


def summary(m: StoredMessage) -> str:
    """One line for people about a message's content."""
    try:
        c = m.json()
    except ValueError:
        return "(not JSON)"
    if not isinstance(c, dict):
        return json.dumps(c)
    if m.content_type == "text":
        return str(c.get("text", ""))
    if m.content_type == "release" and isinstance(c.get("record"), dict):
        c = c["record"]
    if m.content_type in ("seizure", "release"):
        goods = ", ".join(str(g.get("category")) for g in c.get("goods", []) if isinstance(g, dict))
        where = f"{c.get('reporting_country')} {c.get('seizure_date')}"
        return f"record {c.get('record_id')}, case {c.get('case_ref')}, {where}: {goods}"
    if m.content_type == "document":
        names = ", ".join(str(f.get("file_name")) for f in c.get("attachments") or [])
        return f"{c.get('title', '(untitled)')} [{names}]"
    if m.content_type == "alert":
        targets = ", ".join(c.get("targets", []))
        return f"to {targets}: {c.get('action')} (deadline {c.get('deadline') or 'none'})"
    if m.content_type == "alert-response":
        return f"on alert {c.get('alert_id')}: {c.get('outcome')}"
    return json.dumps(c, sort_keys=True)


@command(
    "tail",
    "show new messages in all your areas as they arrive",
    arg("--count", type=int, metavar="N", help="stop after N messages"),
    follows=True,
)
async def tail(ctx: Ctx) -> None:
    # No sync first: the stream resumes from the sync cursor, so what arrived since the last
    # command is shown too, verified the same way, and then what arrives next.
    async with ctx.client() as client:
        ctx.out.note("Following; Ctrl-C to stop.")
        stop, shown = asyncio.Event(), 0

        def show(message: StoredMessage) -> None:
            nonlocal shown
            if stop.is_set():
                return  # past --count (still stored: `opseal read` shows it)
            ctx.out.line(message_json(message), message_text(message))
            shown += 1
            if ctx.args.count is not None and shown >= ctx.args.count:
                stop.set()

        watcher = asyncio.ensure_future(_watch_warnings(ctx, client))
        try:
            await client.tail(show, stop=stop)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            _report_warnings(ctx, client)


async def _watch_warnings(ctx: Ctx, client: Client) -> None:
    """Show integrity warnings as they are recorded, while a command follows the stream."""
    while True:
        await asyncio.sleep(1.0)
        _report_warnings(ctx, client)


def _report_warnings(ctx: Ctx, client: Client) -> None:
    since = ctx.seen_warning if ctx.seen_warning is not None else _last_warning(client)
    fresh = client.warnings(since)
    ctx.out.warnings(fresh)
    ctx.fresh_warnings += len(fresh)
    ctx.seen_warning = fresh[-1][0] if fresh else since


@command(
    "submit seizures",
    "submit seizure records from a CSV or XLSX file",
    arg(
        "file",
        type=Path,
        metavar="FILE",
        help=f"CSV or XLSX (.xlsx), one goods line per row; columns {', '.join(COLUMNS)} "
        f"(required: {', '.join(REQUIRED_COLUMNS)}); `opseal template seizures` writes one",
    ),
    arg("--op", required=True, help="the operation"),
    arg("--area", default="seizures", help="the area (default seizures)"),
    arg(
        "--all-or-nothing",
        action="store_true",
        help="submit nothing when any row is rejected (default: submit every valid record)",
    ),
)
async def submit_seizures(ctx: Ctx) -> int:
    a = ctx.args
    records, rejected = _read_csv(a.file)
    for row in rejected:
        ctx.out.warn(f"{a.file}: {row}")
    if rejected and a.all_or_nothing:
        ctx.out.result(
            {
                "submitted": 0,
                "message_ids": [],
                "rejected": [dataclasses.asdict(r) for r in rejected],
            },
            "Submitted nothing (--all-or-nothing).",
        )
        raise CliError(
            f"{len(rejected)} cells of {a.file} were rejected; nothing was submitted "
            "(--all-or-nothing)",
            "correct the rows listed above and submit the file again",
        )
    async with ctx.client(sync=True) as client:
        await check_may_post(client, a.op, a.area)
        with ctx.out.progress(len(records), "submitting", "record") as bar:
            ids = await client.post_seizures(a.op, records, area=a.area, progress=bar.update)
    ctx.out.result(
        {
            "submitted": len(ids),
            "message_ids": ids,
            "rejected": [dataclasses.asdict(r) for r in rejected],
        },
        f"Submitted {len(ids)} records to {a.op}/{a.area}"
        + (f"; {len(rejected)} rejected cells withheld their records." if rejected else "."),
    )
    if not rejected:
        return OK
    withheld = len({r.record_id or r.row for r in rejected})
    ctx.out.fail(
        f"{len(rejected)} cells of {a.file} were rejected; records withheld: {withheld} "
        "(every other record was submitted)",
        "correct the rows listed above and submit the file again (nothing is sent twice)",
    )
    return REFUSED


def _read_csv(path: Path) -> tuple[list[dict[str, Any]], list[RowError]]:
    if not path.is_file():
        raise usage(f"{path}: no such file", "give the path of a CSV or XLSX file")
    try:
        return read_seizures(path)
    except RecordError as exc:
        raise usage(f"{path}: {exc}", "see `opseal template seizures` for the columns") from exc
    except ClientError as exc:
        raise usage(str(exc), "check that the file is a UTF-8 CSV or an .xlsx workbook") from exc


@command(
    "template seizures",
    "write an empty seizure file with every column (CSV or XLSX)",
    arg("--format", choices=("csv", "xlsx"), default="csv", help="csv (default) or xlsx"),
    arg("--output", type=Path, metavar="FILE", help="where to write (CSV default: stdout)"),
)
async def template_seizures(ctx: Ctx) -> None:
    a = ctx.args
    if a.output is None:
        if a.format == "xlsx":
            raise usage("an XLSX template needs --output FILE", "e.g. --output seizures.xlsx")
        print(",".join(COLUMNS), flush=True)
        return
    try:
        (write_seizures_xlsx if a.format == "xlsx" else write_seizures_csv)(a.output, [])
    except OSError as exc:
        raise usage(f"cannot write {a.output}: {exc.strerror}", "check the path") from exc
    ctx.out.result(
        {"output": str(a.output), "format": a.format, "columns": list(COLUMNS)},
        f"Wrote an empty {a.format.upper()} template to {a.output} "
        f"(required columns: {', '.join(REQUIRED_COLUMNS)}).",
    )


@command(
    "report",
    "aggregate the seizure records you may read (computed here, after a sync)",
    OP,
    arg("--format", choices=tuple(REPORT_FORMATS), help="table (default), json, csv or html"),
    arg("--output", type=Path, metavar="FILE", help="write the report to FILE"),
)
async def report(ctx: Ctx) -> int:
    a = ctx.args
    fmt = a.format or ("json" if ctx.args.json else "table")
    if ctx.args.json and a.output is None and fmt != "json":
        raise usage(f"--json prints the report as JSON; {fmt} needs --output FILE", "add it")
    async with ctx.client(sync=True) as client:
        if client.store.pin(a.op) is None:
            raise CliError(
                f"this device has not joined operation {a.op!r}",
                "see `opseal op list`, then `opseal op join OP --root-key KEY`",
            )
        messages = client.read(a.op, content_type="seizure")
    records, excluded = checked_records((m.message_id, m.org, _payload(m)) for m in messages)
    for item in excluded:
        ctx.out.warn(str(item))
    result = {
        "operation_id": a.op,
        **aggregate(records),
        "excluded": [dataclasses.asdict(e) for e in excluded],
    }
    text = render_report(result, fmt)
    if a.output is None:
        if ctx.args.json:
            ctx.out.result(result)
        else:
            sys.stdout.write(text)
            ctx.out.answered = True
        return WARNINGS if excluded else OK
    try:
        a.output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise usage(f"cannot write {a.output}: {exc.strerror}", "check the path") from exc
    ctx.out.result(
        {"output": str(a.output), "format": fmt, **result},
        f"Wrote the {fmt} report of {a.op} to {a.output}: {result['totals']['seizures']} "
        f"seizures from {result['totals']['administrations']} administrations.",
    )
    return WARNINGS if excluded else OK


def _payload(m: StoredMessage) -> Any:
    try:
        return m.json()
    except ValueError:
        return None


@command(
    "export",
    "write the decrypted seizure records you may read as CSV or JSON",
    OP,
    arg("--format", choices=export.FORMATS, default="csv", help="csv (default) or json"),
    arg("--output", type=Path, metavar="FILE", help="write to FILE, mode 0600 (default: stdout)"),
    arg(
        "--include-personal",
        action="store_true",
        help="keep personal data (consignor, consignee) where the handling code allows; "
        "declared to the server's audit log",
    ),
)
async def export_records(ctx: Ctx) -> None:
    a = ctx.args
    async with ctx.client(sync=True) as client:
        if client.store.pin(a.op) is None:
            raise CliError(
                f"this device has not joined operation {a.op!r}",
                "see `opseal op list`, then `opseal op join OP --root-key KEY`",
            )
        try:
            rows = export.collect(
                client.read(a.op), client.org_id, include_personal=a.include_personal
            )
        except export.ExportRefused as exc:
            raise CliError(
                str(exc), "export without --include-personal, or ask the originating organisation"
            ) from exc
        if a.include_personal:
            try:
                await client.api.declare("export", a.op, len(rows), include_personal=True)
            except (ApiError, TransportError) as exc:
                raise CliError(
                    f"the export with personal data could not be declared ({exc}); "
                    "nothing was written",
                    "retry when the server answers, or export without --include-personal",
                ) from exc
    h1 = sum(1 for r in rows if r.warnings)
    if h1:
        ctx.out.warn(f"{h1} exported record(s) are {export.H1_WARNING}")
    if a.format == "json":
        body = export.to_json(rows, a.op, include_personal=a.include_personal)
    else:
        body = export.to_csv(rows)
    if a.output is None:
        ctx.out.answered = True
        sys.stdout.write(body)
        sys.stdout.flush()
        return
    _write_private(a.output, body)
    personal = "with" if a.include_personal else "without"
    ctx.out.result(
        {
            "output": str(a.output),
            "records": len(rows),
            "format": a.format,
            "include_personal": a.include_personal,
        },
        f"Exported {len(rows)} records of {a.op} to {a.output} ({personal} personal data).",
    )


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only; it appears whole or not at all."""
    part = path.with_name(path.name + ".part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.replace(part, path)


@command(
    "release",
    "put a sanitised copy of a seizure record into a stakeholder area (coordinator)",
    MESSAGE_ID,
    arg("--to", required=True, dest="to_area", metavar="AREA", help="a stakeholder area"),
    arg(
        "--clear",
        action="extend",
        nargs="+",
        default=[],
        metavar="FIELD",
        help="free-text field cleared for release, e.g. description remarks (personal data "
        "never is)",
    ),
)
async def release_record(ctx: Ctx) -> None:
    a = ctx.args
    async with ctx.client(sync=True) as client:
        _verified(client, a.message_id)
        try:
            release_id = await client.release(a.message_id, a.to_area, a.clear)
        except release.ReleaseRefused as exc:
            raise CliError(str(exc), "see `opseal release --help` and `opseal op charter`") from exc
    ctx.out.result(
        {"message_id": release_id, "source_message_id": a.message_id, "area": a.to_area},
        f"Released {a.message_id} into {a.to_area} as {release_id}",
    )


@command(
    "permit-release",
    "permit the coordinator to release your H2 seizure record to stakeholders",
    MESSAGE_ID,
    arg("--note", default="", help="the permission's text (default: a standard sentence)"),
)
async def permit_release(ctx: Ctx) -> None:
    a = ctx.args
    async with ctx.client(sync=True) as client:
        source = _verified(client, a.message_id)
        if source.org != client.org_id or source.content_type != "seizure":
            raise CliError(
                f"{a.message_id} is not a seizure record of {client.org_id}",
                "only the originating organisation permits the release of its records",
            )
        await check_may_post(client, source.op, source.area)
        payload = release.permission(source.message_id, a.note)
        permission_id = await client.post(source.op, source.area, "text", payload)
    ctx.out.result(
        {"message_id": permission_id, "permits": a.message_id},
        f"Permitted the release of {a.message_id} ({permission_id})",
    )


@command(
    "attach",
    "encrypt and upload a file, post it as a document",
    OP,
    AREA,
    arg("file", type=Path, metavar="FILE", help="the file to attach"),
    arg("--title", help="the document's title (default: the file name)"),
    arg("--media-type", help="MIME type (default: guessed from the name)"),
    arg("--requires-ack", action="store_true", help="ask every organisation to acknowledge"),
    arg("--handling", choices=HANDLING, default="H0", help="handling code (default H0)"),
    RETRY,
)
async def attach(ctx: Ctx) -> None:
    a = ctx.args
    if not a.file.is_file():
        raise usage(f"{a.file}: no such file", "give the path of the file to attach")
    async with ctx.client(sync=True) as client:
        await check_may_post(client, a.op, a.area)
        with ctx.out.progress(a.file.stat().st_size, f"uploading {a.file.name}", "B") as bar:
            attachment = await client.upload(
                a.op, a.area, a.file, media_type=a.media_type, progress=bar.update
            )
        content = payloads.document(a.title or a.file.name, [attachment])
        [message_id] = client.enqueue(
            a.op, a.area, [("document", content)], handling=a.handling,
            requires_ack=a.requires_ack,
        )  # fmt: skip
        await send(client, ctx)
    ctx.out.result(
        {"message_id": message_id, "content": redacted(content)},
        f"Posted document {message_id} with {a.file.name} ({a.file.stat().st_size} bytes)",
    )


@command(
    "download",
    "download and decrypt the attachments of a message",
    MESSAGE_ID,
    arg("dest", type=Path, metavar="DEST", help="a file (one attachment) or an existing folder"),
)
async def download(ctx: Ctx) -> None:
    async with ctx.client(sync=True) as client:
        message = _verified(client, ctx.args.message_id)
        files = payloads.attachments_of(message.json())
        if not files:
            raise CliError(f"message {message.message_id} has no attachment", "check the id")
        targets = _targets(ctx.args.dest, [f.meta.file_name for f in files])
        for file, dest in zip(files, targets, strict=True):
            size = file.meta.ciphertext_size
            with ctx.out.progress(size, f"downloading {dest.name}", "B") as bar:
                await client.download(file.meta, file.blob_id, dest, progress=bar.update)
    ctx.out.result({"files": [str(t) for t in targets]}, [f"Saved {t}" for t in targets])


def _targets(dest: Path, names: list[str]) -> list[Path]:
    if dest.is_dir():
        return [dest / _safe_name(name, n) for n, name in enumerate(names)]
    if len(names) > 1:
        raise usage(f"the message has {len(names)} attachments", "give a folder as DEST")
    if not dest.parent.is_dir():
        raise usage(f"{dest.parent}: no such folder", "create it first")
    return [dest]


def _safe_name(name: str, n: int) -> str:
    """The sender's file name without any folder part, so it cannot escape DEST."""
    base = Path(str(name).replace("\\", "/")).name
    return base if base not in ("", ".", "..") else f"attachment-{n + 1}"


def _verified(client: Client, message_id: str) -> StoredMessage:
    message = client.store.message(message_id)
    if message is None:
        raise CliError(
            f"message {message_id} is not among this device's verified messages",
            "check the id (`opseal read`), or whether your organisation reads that area",
        )
    return message


@command("ack", "acknowledge a message (a signed receipt)", MESSAGE_ID)
async def ack(ctx: Ctx) -> None:
    async with ctx.client(sync=True) as client:
        await client.ack(ctx.args.message_id)
    ctx.out.result({"acknowledged": ctx.args.message_id}, f"Acknowledged {ctx.args.message_id}")


@command("acks", "who has read and acknowledged a message (coordinator)", MESSAGE_ID)
async def acks(ctx: Ctx) -> None:
    async with ctx.client(sync=True) as client:
        status = await client.acks(ctx.args.message_id)
    rows = [
        (o["org_id"], o["role"], len(o["members"]), len(o["read"]), len(o["acked"]))
        for o in status["organisations"]
    ]
    pending = status.get("pending_ack_orgs", [])
    ctx.out.result(
        status,
        [
            *table(rows, ("ORGANISATION", "ROLE", "DEVICES", "READ", "ACKNOWLEDGED")),
            f"Still to acknowledge: {', '.join(pending) or 'nobody'}",
        ],
    )


@command(
    "alert",
    "send an alert (request for action) to organisations",
    OP,
    AREA,
    arg("--to", nargs="+", required=True, metavar="ORG", help="target organisations"),
    arg("--action", required=True, help="what you ask them to do"),
    arg("--deadline", metavar="YYYY-MM-DD", help="the day by which to answer"),
)
async def alert(ctx: Ctx) -> None:
    a = ctx.args
    deadline = parse_day(a.deadline, "--deadline") if a.deadline else None
    async with ctx.client(sync=True) as client:
        await check_may_post(client, a.op, a.area)
        message_id = await client.alert(a.op, a.area, a.to, a.action, deadline=deadline)
    ctx.out.result({"message_id": message_id}, f"Alert {message_id} sent to {', '.join(a.to)}")


@command(
    "respond",
    "answer an alert with what you found",
    arg("alert_id", metavar="ALERT_ID", help="the alert's message id"),
    arg("--outcome", required=True, help="what was found or done"),
)
async def respond(ctx: Ctx) -> None:
    async with ctx.client(sync=True) as client:
        alert_message = _verified(client, ctx.args.alert_id)
        if alert_message.content_type != "alert":
            raise usage(f"message {ctx.args.alert_id} is not an alert", "give an alert's id")
        await check_may_post(client, alert_message.op, alert_message.area)
        message_id = await client.respond(
            alert_message.op, alert_message.area, ctx.args.alert_id, ctx.args.outcome
        )
    ctx.out.result({"message_id": message_id}, f"Response {message_id} posted")


# -- audit, outbox, sync ----------------------------------------------------------------------
@command("audit verify", "verify the audit log against its key and your last check")
async def audit_verify(ctx: Ctx) -> None:
    async with ctx.client() as client:
        report = await client.verify_audit()
    cp = report.checkpoint
    ctx.out.result(
        {"size": report.size, "root": report.root.hex(), "entries_checked": report.entries_checked,
         "checkpoint_time": cp.timestamp, "log_id": cp.log_id},
        [
            f"Audit log verified: {report.size} entries, root {report.root.hex()}",
            f"  checkpoint of {when(cp.timestamp)} signed by the pinned log key; it extends "
            "the last checkpoint this profile saw",
        ],
    )  # fmt: skip


@command("outbox", "show submissions waiting to be sent")
async def outbox(ctx: Ctx) -> None:
    async with ctx.client(login=False) as client:
        rows = client.store.outbox_summary()
    keys = ("operation_id", "area", "status", "count", "max_attempts", "last_error")
    data: list[dict[str, Any]] = [dict(zip(keys, r, strict=True)) for r in rows]
    pending = sum(r["count"] for r in data if r["status"] == "pending")
    text = table([[c if c is not None else "-" for c in r] for r in rows],
                 ("OPERATION", "AREA", "STATUS", "COUNT", "ATTEMPTS", "LAST ERROR"))  # fmt: skip
    ctx.out.result(
        {"pending": pending, "areas": data},
        [*text, f"{pending} pending" + ("; `opseal sync` sends them" if pending else "")]
        if rows
        else "The outbox is empty.",
    )


@command("sync", "send the outbox, fetch and verify everything new", RETRY)
async def sync(ctx: Ctx) -> None:
    async with ctx.client() as client:
        sent = await send(client, ctx)
        before = _last_warning(client)
        report = await ctx.sync(client)
        fresh = client.warnings(before)
    data = {
        "sent": sent,
        **dataclasses.asdict(report),
        "warnings": [warning_json(w) for w in fresh],
    }
    ctx.out.result(
        data,
        f"Sent {sent}; received {report.entries} entries ({report.messages} messages, "
        f"{report.commits} commits); {report.refused} refused.",
    )


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


# -- entry point ---------------------------------------------------------------------------------
def make_ctx(args: argparse.Namespace) -> Ctx:
    home = args.home or os.environ.get("OPSEAL_HOME") or DEFAULT_HOME
    name = args.profile or os.environ.get("OPSEAL_PROFILE") or "default"
    return Ctx(args, Out(args.json), Profile(name, Path(home).expanduser()))


def _glue_key_values(argv: list[str]) -> list[str]:
    """``--root-key KEY`` as ``--root-key=KEY``: a base64url key may start with "-", which
    argparse would otherwise take for an option."""
    out: list[str] = []
    for word in argv:
        if out and out[-1] == "--root-key" and word.startswith("-"):
            out[-1] = f"--root-key={word}"
        else:
            out.append(word)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run ``opseal`` with ``argv``; returns the exit code."""
    parser = build_parser()
    argv = _glue_key_values(sys.argv[1:] if argv is None else list(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else USAGE
    ctx = make_ctx(args)
    spec: Command = args.command_spec
    try:
        code: int = asyncio.run(spec.handler(ctx)) or OK
        return WARNINGS if code == OK and ctx.fresh_warnings else code
    except KeyboardInterrupt:
        return OK if spec.follows else 130
    except Exception as exc:
        error = explain(exc, ctx)
        if args.debug:
            traceback.print_exc()
        ctx.out.fail(error.message, error.hint, error.code)
        return error.code


if __name__ == "__main__":
    sys.exit(main())
