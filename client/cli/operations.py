"""Commands: operations (``op list|show|create|add-member|join|charter|phase``, ``admit``,
``remove``, ``rotate``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opseal.crypto.encoding import b64d
from opseal.crypto.errors import CryptoError, DecodeError
from opseal.crypto.roles import HISTORY_POLICIES, ROLES

from ..errors import (
    NotFoundError,
)
from .charter_view import charter_json, charter_text, show_members
from .codes import CliError, usage
from .context import Ctx, confirm, parse_time
from .registry import OP, PHASES, arg, command
from .render import table, when

if TYPE_CHECKING:
    from opseal.crypto.charter import AreaPolicy, Charter, Member
    from opseal.crypto.keys import VerifyKey

    from ..client import Client
    from ..invitation import Invitation


def default_areas() -> tuple[AreaPolicy, ...]:
    """The areas of an operation created without ``--area``."""
    from opseal.crypto.charter import AreaPolicy

    return (
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
    import msgspec

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
    import msgspec

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
    arg("--area", action="append", default=[],
        metavar="NAME:READ_ROLES:POST_ROLES[:HISTORY[:ROTATION_S[:WINDOW_S]]]",
        help="an area; roles comma-separated, history shared or since-join, the seconds "
        "between scheduled epoch rotations (0: a day; members warn when an epoch is "
        "older), the seconds a device keeps an epoch's secret once the next epoch began "
        "(0: shared keeps all, since-join a week; a stolen device opens nothing older); "
        "repeat (default: plan, seizures, alerts, stakeholders)"),
    arg("--retention-days", type=int, default=365, help="keep the data this long after closing"),
    arg("--out", metavar="FILE", help="also write the invitation block to FILE, ready to send"),
    arg("--yes", action="store_true", help="do not ask before publishing"),
)  # fmt: skip
async def op_create(ctx: Ctx) -> None:
    from opseal.crypto.charter import Charter

    a = ctx.args
    roles, codes = _parse_members(a.member)
    areas = tuple(_parse_area(text) for text in a.area) or default_areas()
    starts, ends = parse_time(a.start, "--start"), parse_time(a.end, "--end", end_of_day=True)
    async with ctx.client() as client:
        roles.setdefault(client.org_id, "coordinator")
        members = [
            await _member(client, org, role, codes.get(org, ())) for org, role in roles.items()
        ]
        show_members(ctx, members)
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
        invitation = _invitation(client, charter)
    _send_invitation(
        ctx,
        charter_json(charter),
        invitation,
        f"Operation {charter.code} ({charter.operation_id}) created: charter v1 published "
        f"and {len(charter.areas)} areas created.",
    )


def _invitation(client: Client, charter: Charter, member: Member | None = None) -> Invitation:
    from ..invitation import Invitation

    return Invitation(
        operation_id=charter.operation_id, code=charter.code, name=charter.name,
        coordinator=client.org_id, server=client.info.server,
        instance_id=client.info.instance_id,
        root_key=charter.member(client.org_id).root_key,
        member=f"{member.organisation_id} ({member.role})" if member else "",
    )  # fmt: skip


def _send_invitation(ctx: Ctx, data: dict[str, Any], invitation: Invitation, done: str) -> None:
    """Print (and with ``--out`` write) the invitation block for the members' focal points."""
    block = invitation.block()
    if ctx.args.out:
        Path(ctx.args.out).write_text(block)
    ctx.out.result(
        {**data, "invitation": block},
        [
            done,
            "Send this invitation to each member's focal point"
            + (f" (also written to {ctx.args.out})" if ctx.args.out else "")
            + "; give them the fingerprint by phone or letter too:",
            *block.splitlines(),
            "They join with: opseal op join --invitation FILE",
            "Admit them as they ask: opseal admit --watch",
        ],
    )


@command(
    "op add-member",
    "add an organisation to an operation's charter and print its invitation (coordinator)",
    OP,
    arg("member", metavar="ORG:ROLE[:CODES]",
        help="the organisation, its role and the countries it reports seizures for, "
        "as for `op create --member`"),
    arg("--out", metavar="FILE", help="also write the invitation block to FILE, ready to send"),
    arg("--yes", action="store_true", help="do not ask before publishing"),
)  # fmt: skip
async def op_add_member(ctx: Ctx) -> None:
    org, role, codes = _member_spec(ctx.args.member)
    async with ctx.client(sync=True) as client:
        charter = await client.charter(ctx.args.op, refresh=True)
        if any(m.organisation_id == org for m in charter.members):
            raise usage(
                f"{org} is already a member of {ctx.args.op}",
                f"`opseal op charter {ctx.args.op}` lists the members",
            )
        member = await _member(client, org, role, codes)
        show_members(ctx, [member])
        confirm(ctx, "Is this the fingerprint on its nomination letter? Publish the charter?")
        draft = charter.next_version(issued_at=client.now() - 1, members=[*charter.members, member])
        user_key, _ = ctx.profile.load_user(ctx.passphrase())
        await client.api.publish_charter(
            ctx.args.op, draft.signed(user_key, client.identity.user_cert).to_bytes()
        )
        charter = await client.charter(ctx.args.op, refresh=True)
        invitation = _invitation(client, charter, member)
    _send_invitation(
        ctx,
        charter_json(charter),
        invitation,
        f"{org} added to {charter.code} ({charter.operation_id}) as {role}: "
        f"charter v{charter.version} published.",
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
    from opseal.crypto.charter import AreaPolicy

    parts = spec.split(":")
    numbers = parts[4:]
    if len(parts) not in (3, 4, 5, 6) or not parts[0] or not all(n.isdigit() for n in numbers):
        raise usage(
            f"--area {spec!r}: expected NAME:READ_ROLES:POST_ROLES[:HISTORY[:ROTATION_S"
            "[:WINDOW_S]]]",
            "e.g. --area seizures:coordinator,customs:coordinator,customs:since-join:86400:172800",
        )
    name, read, post = parts[:3]
    history = parts[3] if len(parts) >= 4 else "shared"
    rotation, window = (*(int(n) for n in numbers), 0, 0)[:2]
    if history not in HISTORY_POLICIES:
        raise usage(f"--area {spec!r}: history {history!r}", f"use {' or '.join(HISTORY_POLICIES)}")
    try:
        return AreaPolicy(name, _roles(read), _roles(post), history, rotation, window)
    except DecodeError as exc:
        raise usage(f"--area {spec!r}: {exc}", "see `opseal op create --help`") from exc


def _roles(text: str) -> frozenset[str]:
    return frozenset(r.strip() for r in text.split(",") if r.strip())


async def _member(client: Client, org_id: str, role: str, codes: tuple[str, ...]) -> Member:
    from opseal.crypto.charter import Member
    from opseal.crypto.keys import VerifyKey

    try:
        record = await client.api.organisation(org_id)
    except NotFoundError as exc:
        raise usage(f"organisation {org_id!r} is not registered on this instance",
                    "check the id with the instance admin") from exc  # fmt: skip
    if not record.root_key:
        raise CliError(
            f"organisation {org_id!r} has not enrolled yet (no root key registered)",
            "ask its focal point to run `opseal enrol --new-root` first",
        )
    root = VerifyKey(b64d(record.root_key, field="root_key"))
    return Member(org_id, record.name, record.kind, role, root, codes)


@command(
    "op join",
    "accept an invitation: check and pin the coordinator's root key",
    arg("op", nargs="?", metavar="OP", help="operation id (taken from --invitation if omitted)"),
    arg("--invitation", metavar="FILE|-|BLOCK",
        help="the invitation block: a file (a whole e-mail will do), - for stdin, or the text"),
    arg("--root-key", metavar="B64",
        help="instead of --invitation: the coordinator organisation's root public key"),
    arg("--fingerprint", metavar="DIGITS",
        help="the coordinator's root fingerprint as given by phone or letter: join only if it "
        "matches (without it, you are asked to compare at a terminal)"),
    arg("--yes", action="store_true", help="do not ask to confirm the fingerprint"),
)  # fmt: skip
async def op_join(ctx: Ctx) -> None:
    from ..invitation import same_fingerprint

    a = ctx.args
    op, root, invitation = _join_target(a)
    ctx.out.note(f"Coordinator root key fingerprint: {root.fingerprint}")
    if a.fingerprint is not None:
        if not same_fingerprint(a.fingerprint, root.fingerprint):
            raise CliError(
                f"the coordinator's root fingerprint is {root.fingerprint}, not {a.fingerprint}",
                "do not join: ask the coordinator by another channel; nothing was pinned",
            )
    else:
        confirm(ctx, "Does it match the fingerprint the coordinator gave you (phone or letter)?")
    async with ctx.client() as client:
        if invitation is not None and invitation.instance_id != client.info.instance_id:
            raise CliError(
                f"the invitation is for instance {invitation.instance_id} at {invitation.server}; "
                f"this profile is on {client.info.instance_id}",
                "join from a profile enrolled on that instance",
            )
        areas = await client.join(op, root.key_id)
        charter = await client.charter(op)
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


def _join_target(a: Any) -> tuple[str, VerifyKey, Invitation | None]:
    """The operation and coordinator root to join, from ``--invitation`` or ``--root-key``."""
    from opseal.crypto.keys import VerifyKey

    from ..invitation import Invitation, InvitationError

    if (a.invitation is None) == (a.root_key is None):
        raise usage(
            "give exactly one of --invitation and --root-key", "see `opseal op join --help`"
        )
    if a.root_key is not None:
        if not a.op:
            raise usage("missing OP", "give the operation id from the invitation")
        try:
            return a.op, VerifyKey(b64d(a.root_key.strip(), field="--root-key")), None
        except CryptoError as exc:
            raise usage(
                f"--root-key: {exc}", "paste the base64url key from the invitation"
            ) from exc
    try:
        invitation = Invitation.parse(_invitation_text(a.invitation))
    except InvitationError as exc:
        raise usage(f"--invitation: {exc}", "ask the coordinator to send it again") from exc
    if a.op and a.op != invitation.operation_id:
        raise usage(
            f"the invitation is for {invitation.operation_id}, not {a.op}",
            "leave OP out, or use the invitation for that operation",
        )
    return invitation.operation_id, invitation.root_key, invitation


def _invitation_text(value: str) -> str:
    if "OPSEAL INVITATION" in value:
        return value
    if value == "-":
        return sys.stdin.read()
    try:
        return Path(value).read_text()
    except OSError as exc:
        raise usage(f"cannot read --invitation {value}: {exc.strerror}", "check the path") from exc


@command("op charter", "show the charter, verified from the pinned root key", OP)
async def op_charter(ctx: Ctx) -> None:
    async with ctx.client() as client:
        charter = await client.charter(ctx.args.op, refresh=True)
    ctx.out.result(charter_json(charter), charter_text(charter))


PHASE_MEANINGS = {
    "preparation": "members join and plan; records and messages may be posted",
    "active": "the operation runs: members post seizures, alerts and messages",
    "follow-up": "the operation has ended; members still post late records and corrections",
    "closed": "read-only for good: nothing more can be posted, corrected or released, and "
    "phases never go back",
    "archived": "the server refuses every request and purges the content after the retention "
    "period; nobody can read it any more",
}


@command(
    "op phase",
    "move an operation to its next phase (coordinator; asks first)",
    OP,
    arg("phase", choices=PHASES, metavar="PHASE", help=" -> ".join(PHASES)),
    arg("--yes", action="store_true", help="do not ask (needed without a terminal, e.g. scripts)"),
    arg("--force", action="store_true", help="allow skipping phases, e.g. active -> closed"),
)
async def op_phase(ctx: Ctx) -> None:
    import msgspec

    a = ctx.args
    async with ctx.client() as client:
        current = (await client.api.operation(a.op)).phase
        _check_step(a.op, current, a.phase, a.force)
        ctx.out.note(f"{a.op}: {current} -> {a.phase}. In {a.phase}, {PHASE_MEANINGS[a.phase]}.")
        confirm(ctx, f"Move {a.op} to {a.phase}? This cannot be undone.", required=True)
        answer = msgspec.to_builtins(await client.api.set_phase(a.op, a.phase))
    ctx.out.result(answer, f"{a.op} is now in phase {a.phase}")


def _check_step(op: str, current: str, target: str, force: bool) -> None:
    """Phases move one step forward; a skip needs --force, going back is impossible."""
    step = PHASES.index(target) - PHASES.index(current)
    if step <= 0:
        raise usage(
            f"{op} is in phase {current}: phases only move forward",
            f"the next phase is {PHASES[PHASES.index(current) + 1]}"
            if current != PHASES[-1]
            else "an archived operation stays archived",
        )
    if step > 1 and not force:
        skipped = ", ".join(PHASES[PHASES.index(current) + 1 : PHASES.index(target)])
        raise usage(
            f"{current} -> {target} skips {skipped}",
            f"move to {PHASES[PHASES.index(current) + 1]} first, or add --force to skip",
        )
