"""The ``opseal`` command line. Its commands (design §10) arrive with the client issue; until
then it answers ``--version`` and ``--help`` and points at the crypto self-demo."""

from __future__ import annotations

import argparse
from importlib.metadata import version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="opseal",
        description="OpSeal client. Try `python -m opseal.crypto.demo` for the crypto self-demo.",
    )
    parser.add_argument("--version", action="version", version=f"opseal {version('opseal')}")
    parser.parse_args(argv)
    parser.print_help()
    return 0
