"""Start-up of the ``opseal`` command (issue 10): help and usage load no heavy library."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("aiohttp", "argon2", "asyncio", "cryptography", "jsonschema", "msgspec", "openpyxl",
         "sqlalchemy", "tqdm")  # fmt: skip

_PROBE = """
import json, sys
from opseal.client.cli import main
codes = [main(["--help"]), main(["submit", "seizures", "--help"]), main(["op", "create"])]
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print(json.dumps({{"codes": codes, "heavy": heavy}}), file=sys.stderr)
"""


def test_help_and_usage_errors_import_no_heavy_module():
    """``opseal --help``, a command's ``--help`` and a usage error answer without importing
    the crypto, HTTP, schema, spreadsheet or database libraries, nor asyncio and the wire
    contract (~40 and ~20 ms of a 0.15 s budget): a command pays for what it uses, and a
    mistyped command answers at once."""
    probe = _PROBE.format(heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    result = json.loads(done.stderr.strip().splitlines()[-1])
    assert result["codes"] == [0, 0, 2], done.stderr
    assert result["heavy"] == [], result
    assert "submit seizures" in done.stdout
    assert "--op" in done.stdout
