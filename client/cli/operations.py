"""Commands: operations (``op list|show|create|join|charter|phase``, ``admit``)."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from opseal.crypto.charter import HISTORY_POLICIES, ROLES, AreaPolicy, Charter, Member
from opseal.crypto.encoding import b64d, b64e
from opseal.crypto.errors import CryptoError, DecodeError
from opseal.crypto.keys import VerifyKey

from ..client import Client
from ..errors import (
    ClientError,
    NotFoundError,
    TransportError,
    UnauthorizedError,
)
from .codes import CliError, usage
from .context import Ctx, confirm, parse_time
from .registry import OP, PHASES, arg, command
from .render import table, when

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


# -- operations -------------------------------------------------------------------------------
@command("op list", "list the operations your organisation is invited to")
async def op_list(ctx: Ctx) -> None:
    async with ctx.client() as client:
        ops = msgspec.to_builtins(await client.api.operations())
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
        op = msgspec.to_builtins(await client.api.operation(ctx.args.op))
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
    arg("--member", action="append", default=[], metavar="ORG:ROLE[:CODES]",
        help=f"a member organisation, its role ({', '.join(ROLES)}) and the countries it "
        "reports seizures for (ISO 3166 alpha-2, comma-separated, e.g. fr-customs:customs:FR; "
        "none: its records do not count); repeat"),
    arg("--area", action="append", default=[], metavar="NAME:READ_ROLES:POST_ROLES:HISTORY",
        help="an area; roles comma-separated, history shared or since-join; repeat "
        "(default: plan, seizures, alerts, stakeholders)"),
    arg("--retention-days", type=int, default=365, help="keep the data this long after closing"),
    arg("--yes", action="store_true", help="do not ask before publishing"),
)  # fmt: skip
async def op_create(ctx: Ctx) -> None:
    a = ctx.args
    roles, codes = _parse_members(a.member)
    areas = tuple(_parse_area(text) for text in a.area) or DEFAULT_AREAS
    starts, ends = parse_time(a.start, "--start"), parse_time(a.end, "--end", end_of_day=True)
    async with ctx.client() as client:
        roles.setdefault(client.org_id, "coordinator")
        members = [
            await _member(client, org, role, codes.get(org, ())) for org, role in roles.items()
        ]
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


def _parse_members(specs: list[str]) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """``--member ORG:ROLE[:CODES]`` as roles and reporting codes by organisation."""
    roles: dict[str, str] = {}
    codes: dict[str, tuple[str, ...]] = {}
    for spec in specs:
        org, role, countries = _member_spec(spec)
        if org in roles:
            raise usage(f"--member {org!r} is given twice", "list each organisation once")
        roles[org], codes[org] = role, countries
    return roles, codes


def _member_spec(spec: str) -> tuple[str, str, tuple[str, ...]]:
    head, sep, last = spec.rpartition(":")
    if sep and last not in ROLES and ":" in head:  # ORG:ROLE:CODES
        org, _, role = head.rpartition(":")
        countries = tuple(c.strip().upper() for c in last.split(",") if c.strip())
    else:
        org, role, countries = head, last, ()
    if not sep or not org or role not in ROLES:
        raise usage(f"--member {spec!r}: expected ORG:ROLE", f"ROLE is one of {', '.join(ROLES)}")
    bad = [c for c in countries if len(c) != 2 or not (c.isascii() and c.isalpha())]
    if bad:
        raise usage(
            f"--member {spec!r}: {bad[0]!r} is not an ISO 3166 alpha-2 code",
            "give codes such as FR or FR,GP",
        )
    return org, role, countries


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


async def _member(client: Client, org_id: str, role: str, codes: tuple[str, ...]) -> Member:
    try:
        record = await client.api.organisation(org_id)
    except NotFoundError as exc:
        raise usage(f"organisation {org_id!r} is not registered on this instance",
                    "check the id with the instance admin") from exc  # fmt: skip
    if not record.root_key:
        raise CliError(
            f"organisation {org_id!r} has not enrolled yet (no root key registered)",
            "ask its focal point to run `opseal org keygen` and `opseal enrol` first",
        )
    root = VerifyKey(b64d(record.root_key, field="root_key"))
    return Member(org_id, record.name, record.kind, role, root, codes)


def _show_members(ctx: Ctx, members: list[Member]) -> None:
    ctx.out.note("Member organisations and their root key fingerprints — check each one:")
    for m in members:
        ctx.out.note(f"  {m.organisation_id:<20} {m.role:<12} {m.fingerprint}")
    for m in members:
        if m.role == "customs" and not m.reporting_codes:
            ctx.out.warn(
                f"{m.organisation_id} reports for no country: its seizure records will not "
                f"count; give --member {m.organisation_id}:{m.role}:CC to let it report for CC"
            )


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
             "reporting_codes": list(m.reporting_codes), "root_key": b64e(m.root_key.raw),
             "fingerprint": m.fingerprint}
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
    members = [
        (m["org_id"], m["role"], ",".join(m["reporting_codes"]) or "-", m["fingerprint"], m["name"])
        for m in data["members"]
    ]
    areas = [(a["area"], ",".join(a["read"]), ",".join(a["post"]), a["history"])
             for a in data["areas"]]  # fmt: skip
    return [
        f"{c.code} — {c.name} ({c.operation_id}), charter v{c.version} (verified)",
        f"  {when(c.starts_at)} to {when(c.ends_at)}; signed by {data['signed_by']} "
        f"at {when(c.issued_at)}",
        *table(members, ("ORGANISATION", "ROLE", "REPORTS FOR", "ROOT FINGERPRINT", "NAME")),
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
        answer = msgspec.to_builtins(await client.api.set_phase(ctx.args.op, ctx.args.phase))
    ctx.out.result(answer, f"{ctx.args.op} is now in phase {ctx.args.phase}")


@command(
    "admit",
    "admit devices waiting to join (the charter decides)",
    arg("--op", help="only this operation"),
    arg("--watch", action="store_true", help="keep admitting until Ctrl-C"),
    arg("--interval", type=float, default=5.0, metavar="S", help="seconds between rounds"),
    arg("--readmit", action="append", default=[], metavar="DEVICE",
        help="admit again a device that was removed (repeat); others stay out"),
    follows=True,
)  # fmt: skip
async def admit(ctx: Ctx) -> None:
    # --watch logs in within its rounds: a server down at the start is waited for too
    async with ctx.client(login=not ctx.args.watch) as client:
        if not ctx.args.watch:
            admitted = sorted(set(await client.admit(ctx.args.op, ctx.args.readmit)))
            text = f"Admitted: {', '.join(admitted)}" if admitted else "Nobody is waiting."
            ctx.out.result({"admitted": admitted}, text)
            return
        ctx.out.note(f"Admitting every {ctx.args.interval:g} s; Ctrl-C to stop.")
        delay = ctx.args.interval
        while True:
            reached = await _admit_round(ctx, client, delay)
            delay = ctx.args.interval if reached else min(max(delay, 0.5) * 2, WATCH_BACKOFF)
            await asyncio.sleep(delay)


WATCH_BACKOFF = 30.0
"""The longest wait of ``admit --watch`` between tries while the server is unreachable."""


async def _admit_round(ctx: Ctx, client: Client, delay: float) -> bool:
    """One round of ``admit --watch``: a refusal is reported and the watch goes on; an
    unreachable server is retried with backoff (False), logging in again once it answers."""
    try:
        admitted = sorted(set(await client.admit(ctx.args.op, ctx.args.readmit)))
    except TransportError as exc:
        ctx.countdown(min(max(delay, 0.5) * 2, WATCH_BACKOFF), float("inf"), exc)
        return False
    except UnauthorizedError:  # the server restarted or the session expired
        await client.session.relogin()
        return True
    except (ClientError, CryptoError) as exc:
        ctx.out.note(f"{when(client.now())}  admission round failed: {exc}")
        return True
    for device in admitted:
        ctx.out.line({"admitted": device}, f"{when(client.now())}  admitted {device}")
    return True


@command(
    "remove",
    "remove a device, or every device of an organisation, from an operation's areas",
    arg("--op", required=True, help="the operation"),
    arg("--device", help="the device to remove"),
    arg("--org", help="the organisation whose devices to remove"),
    arg("--yes", action="store_true", help="do not ask first"),
)
async def remove(ctx: Ctx) -> None:
    a = ctx.args
    if (a.device is None) == (a.org is None):
        raise usage("give exactly one of --device and --org", "see `opseal remove --help`")
    confirm(ctx, f"Remove {a.device or 'every device of ' + a.org} from {a.op}?")
    async with ctx.client() as client:
        removed = await client.remove(a.op, device=a.device, org=a.org)
    text = f"Removed: {', '.join(removed)}" if removed else "Nothing to remove."
    ctx.out.result(
        {"removed": removed},
        [text, *(["They stay out until `opseal admit --readmit DEVICE`."] if removed else [])],
    )
