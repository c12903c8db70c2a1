"""The command table: each command group registers its handlers with :func:`command`, and
the parser is built from :data:`COMMANDS` in registration order (the order of ``--help``)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from .context import Ctx

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
    name: str,
    summary: str,
    *arguments: tuple[tuple[str, ...], dict[str, Any]],
    follows: bool = False,
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        COMMANDS.append(Command(tuple(name.split()), summary, handler, arguments, follows))
        return handler

    return register


PHASES = ("preparation", "active", "follow-up", "closed", "archived")
HANDLING = ("H0", "H1", "H2", "H3")

OP = arg("op", metavar="OP", help="operation id")
AREA = arg("area", metavar="AREA", help="area name, e.g. plan, seizures")
MESSAGE_ID = arg("message_id", metavar="MESSAGE_ID", help="a message id (see `opseal read`)")

RETRY = arg(
    "--retry-for", type=float, default=60.0, metavar="S",
    help="keep retrying an unreachable server this long, with a countdown on stderr "
    "(default 60); then exit 3: what is queued stays in the outbox for a re-run or "
    "`opseal sync`",
)  # fmt: skip
