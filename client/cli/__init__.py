"""``opseal``: the command line of an OpSeal device (design §10).

Every command works on one profile (``--home``/``--profile``), opens its keys with the
passphrase (``--passphrase-file``, ``OPSEAL_PASSPHRASE`` or a prompt), syncs first where it
reads, and prints for people — or, with ``--json``, one JSON document on stdout for scripts
(``tail`` and ``admit --watch`` print one JSON object per line). Progress bars go to stderr.

Errors a person can act on are one line, ``opseal: <what happened>; <what to do>``; tracebacks
only with ``--debug``. Exit codes are :data:`EXIT_CODES`.

The package: :mod:`.app` (parser and entry point), :mod:`.explain` (errors as one line and an
exit code), :mod:`.render` (text, tables, JSON), :mod:`.context` (one invocation),
:mod:`.registry` (the command table), and one module per command group (:mod:`.onboarding`,
:mod:`.operations`, :mod:`.messages`, :mod:`.records`, :mod:`.files`, :mod:`.alerts`,
:mod:`.maintenance`).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from .app import build_parser, run
from .codes import EXIT_CODES
from .registry import COMMANDS

if TYPE_CHECKING:
    from opseal.crypto.keys import KdfParams

__all__ = ["COMMANDS", "EXIT_CODES", "KDF_PARAMS", "build_parser", "main"]

KDF_PARAMS: KdfParams | None = None
"""Argon2id cost for new key files (None: the crypto core's default). Tests lower it."""


def main(argv: list[str] | None = None) -> int:
    """Run ``opseal`` with ``argv`` (default: the process's arguments); returns the exit code."""
    return run(argv, kdf_params=KDF_PARAMS)


if __name__ == "__main__":
    sys.exit(main())
