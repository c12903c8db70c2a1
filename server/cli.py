"""The ``opseal-server`` command line. Its commands (``init``, ``migrate``, ``serve``, ...)
arrive with the server issue; until then it answers ``--version`` and ``--help``."""

from __future__ import annotations

import argparse
from importlib.metadata import version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="opseal-server", description="OpSeal server.")
    parser.add_argument("--version", action="version", version=f"opseal {version('opseal')}")
    parser.parse_args(argv)
    parser.print_help()
    return 0
