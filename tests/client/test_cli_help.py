"""What ``opseal`` says without doing anything: the command list, each command's examples,
and the hint every refusal code gets (no server needed)."""

from __future__ import annotations

import pytest

from opseal.client import cli
from opseal.client.cli.explain import api_hint
from opseal.client.errors import error_for
from opseal.wire.errors import ERRORS


def test_bare_opseal_lists_the_commands_and_every_help_has_examples(capsys):
    """``opseal`` alone prints every command (exit 0); each command's ``--help`` ends with
    examples that start with ``opseal``."""
    assert cli.main([]) == 0
    listing = capsys.readouterr().out
    parser = cli.build_parser()
    for command in cli.COMMANDS:
        assert " ".join(command.path) in listing
        with pytest.raises(SystemExit):
            parser.parse_args([*command.path, "--help"])
        help_text = capsys.readouterr().out
        examples = help_text.split("examples:\n", 1)
        assert len(examples) == 2, command.path
        assert examples[1].lstrip().startswith("opseal"), command.path


def test_each_refusal_code_has_its_own_hint():
    """Every code of the error table has a hint of its own, and the CLI gives it."""
    hints = [entry.hint for entry in ERRORS.values()]
    assert all(hints)
    assert len(set(hints)) == len(hints)
    for code, entry in ERRORS.items():
        exc = error_for(entry.status, {"error": {"code": code, "message": "m", "details": {}}})
        assert api_hint(exc) == entry.hint, code


def test_conflicts_and_focal_points_get_precise_hints():
    """A phase or device-name conflict is not blamed on another message, an enrolment for the
    wrong organisation names the right one, and a focal point is not sent to itself."""

    def refusal(code: str, message: str, **details: str):
        status = ERRORS[code].status
        return error_for(status, {"error": {"code": code, "message": message, "details": details}})

    for message in ("phase: cannot go from closed to active", "device 'lap' is already registered"):
        hint = api_hint(refusal("conflict", message))
        assert "message" not in hint
        assert ("--device" in hint) or ("op show" in hint)
    wrong = refusal("bad_request", "organisation: this enrolment code was issued for 'nl'",
                    expected="nl")  # fmt: skip
    assert api_hint(wrong) == "run the command again with --org nl"
    for code in ("unauthorized", "invalid_signature"):
        assert "focal point" in api_hint(refusal(code, "m"))
        assert "ask your focal point" not in api_hint(refusal(code, "m"), focal_point=True)
        assert "its focal point" not in api_hint(refusal(code, "m"), focal_point=True)
