"""Exit codes of ``opseal`` and the error that carries one (``opseal: <what>; <hint>``)."""

from __future__ import annotations

OK, REFUSED, USAGE, UNREACHABLE, WARNINGS = 0, 1, 2, 3, 4
INTERRUPTED = 130  # Ctrl-C (what stays queued is said first)
EXIT_CODES = {
    OK: "ok",
    REFUSED: "refused by the server, or something failed verification (or rows were rejected)",
    USAGE: "usage or configuration error (arguments, profile, passphrase, input file)",
    UNREACHABLE: "the server could not be reached (queued submissions stay in the outbox)",
    WARNINGS: "integrity warnings were found (refused entries, possibly missing messages)",
}


class CliError(Exception):
    """A failure to report as ``opseal: <message>; <hint>`` with exit code ``code``."""

    def __init__(self, message: str, hint: str = "", code: int = REFUSED) -> None:
        super().__init__(message)
        self.message, self.hint, self.code = message, hint, code


def usage(message: str, hint: str = "see `opseal COMMAND --help`") -> CliError:
    return CliError(message, hint, USAGE)
