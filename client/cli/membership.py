"""Commands: membership of areas (``admit``, ``remove``, ``rotate``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opseal.crypto.errors import CryptoError
from opseal.crypto.roles import ROLES

from ..errors import (
    ClientError,
    TransportError,
    UnauthorizedError,
)
from .codes import usage
from .context import Ctx, confirm
from .registry import arg, command
from .render import when

if TYPE_CHECKING:
    from opseal.crypto.charter import AreaPolicy

    from ..client import Client


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


@command(
    "admit",
    "admit devices waiting to join (the charter decides)",
    arg("--op", help="only this operation"),
    arg("--watch", action="store_true", help="keep admitting until Ctrl-C"),
    arg("--interval", type=float, default=5.0, metavar="S", help="seconds between rounds"),
    arg("--readmit", action="append", default=[], metavar="DEVICE",
        help="admit again a device that was removed (repeat); others stay out"),
    arg("--rotate-every", type=int, default=None, metavar="S",
        help="with --watch: rotate an area whose epoch is this many seconds old "
             "(default: the area's rotation period in the charter, a day unless set)"),
    follows=True,
)  # fmt: skip
async def admit(ctx: Ctx) -> None:
    # --watch logs in within its rounds: a server down at the start is waited for too
    import asyncio  # not at the top: `opseal --help` imports this module

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
    try:
        rotated = await client.rotate_due(ctx.args.rotate_every)
    except (ClientError, CryptoError) as exc:
        ctx.out.note(f"{when(client.now())}  rotation failed: {exc}")
        return True
    for op, area in rotated:
        ctx.out.line({"rotated": f"{op}/{area}"}, f"{when(client.now())}  rotated {op}/{area}")
    return True


@command(
    "rotate",
    "start a new epoch now: fresh secret for every member, this device's init key replaced",
    arg("--op", required=True, help="the operation"),
    arg("--area", help="only this area (default: every area this device belongs to)"),
)
async def rotate(ctx: Ctx) -> None:
    async with ctx.client() as client:
        rotated = await client.rotate(ctx.args.op, ctx.args.area)
    text = f"Rotated: {', '.join(rotated)}" if rotated else "Nothing to rotate."
    ctx.out.result({"rotated": rotated}, text)


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
