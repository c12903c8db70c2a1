"""The ``opseal`` parser and entry point: the global options, the sub-commands built from the
command table, and :func:`run`, which turns every failure into one line and an exit code."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from .. import agent as key_agent
from ..profile import DEFAULT_HOME, Profile
from .codes import EXIT_CODES, INTERRUPTED, OK, USAGE, WARNINGS
from .context import Ctx
from .examples import epilog
from .registry import COMMANDS, Command
from .render import Out

if TYPE_CHECKING:
    from opseal.crypto.keys import KdfParams

# Importing a command group registers its commands; this order is the order of `--help`.
# isort: off
from . import onboarding  # noqa: F401
from . import operations  # noqa: F401
from . import membership  # noqa: F401
from . import messages  # noqa: F401
from . import records  # noqa: F401
from . import sharing  # noqa: F401
from . import files  # noqa: F401
from . import alerts  # noqa: F401
from . import maintenance  # noqa: F401
from . import integrity  # noqa: F401
from . import agent  # noqa: F401
from . import web  # noqa: F401
# isort: on


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors in the one-line ``opseal: ...; ...`` form (exit 2)."""

    def error(self, message: str) -> NoReturn:
        if "required: COMMAND" in message:  # `opseal op`: the commands it could be
            self.print_help(sys.stderr)
        print(f"opseal: {message}; see `{self.prog} --help`", file=sys.stderr)
        raise SystemExit(USAGE)


class _Version(argparse.Action):
    """``--version``, reading the installed metadata only when asked (it costs ~20 ms)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> NoReturn:
        from importlib.metadata import version

        print(f"opseal {version('opseal')}")
        parser.exit()


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
    parser.add_argument("--version", action=_Version, help="show the version and exit")
    _global_options(parser, top=True)
    common = Parser(add_help=False)
    _global_options(common, top=False)
    groups: dict[str, argparse._SubParsersAction[Parser]] = {}
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
        p = sub.add_parser(
            cmd.path[-1],
            description=cmd.summary,
            epilog=epilog(" ".join(cmd.path)),
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[common],
            **listed,
        )
        for names, options in cmd.arguments:
            p.add_argument(*names, **options)
        p.set_defaults(command_spec=cmd)
    return parser


# -- entry point ---------------------------------------------------------------------------------
def make_ctx(args: argparse.Namespace, kdf_params: KdfParams | None = None) -> Ctx:
    home = args.home or os.environ.get("OPSEAL_HOME") or DEFAULT_HOME
    name = args.profile or os.environ.get("OPSEAL_PROFILE") or "default"
    return Ctx(args, Out(args.json), Profile(name, Path(home).expanduser()), kdf_params)


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


def run(argv: list[str] | None = None, *, kdf_params: KdfParams | None = None) -> int:
    """Run ``opseal`` with ``argv``; returns the exit code. ``kdf_params`` is the Argon2id
    cost of new key files (None: the crypto core's default)."""
    parser = build_parser()
    argv = _glue_key_values(sys.argv[1:] if argv is None else list(argv))
    if not argv:  # bare `opseal`: what it can do
        parser.print_help()
        return OK
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else USAGE
    ctx = make_ctx(args, kdf_params)
    spec: Command = args.command_spec
    try:
        # With an agent running, short scripted commands run in its warm interpreter.
        ran = None if args.debug else key_agent.run_command(ctx.profile.path, spec.path, argv)
        if ran is not None:
            return ran
        import asyncio  # not for `opseal --help` (~40 ms)

        code: int = asyncio.run(spec.handler(ctx)) or OK
        return WARNINGS if code == OK and ctx.fresh_warnings else code
    except KeyboardInterrupt:
        if ctx.queued:
            print(
                f"opseal: interrupted; {ctx.queued} queued in the outbox; "
                "re-run or `opseal sync` to send them",
                file=sys.stderr,
                flush=True,
            )
        return OK if spec.follows else INTERRUPTED
    except Exception as exc:
        from .explain import explain  # imports most of the client: only on a failure

        error = explain(exc, ctx)
        if args.debug:
            traceback.print_exc()
        ctx.out.fail(error.message, error.hint, error.code)
        return error.code
