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


def test_op_create_area_spec_sets_rotation_and_history_window_and_the_view_shows_them():
    """``--area NAME:READ:POST[:HISTORY[:ROTATION_S[:WINDOW_S]]]``: the window goes into the
    charter's area (0 or absent: the history policy's default), the charter view shows the
    window kept ("all" for a shared area without one); a bad window is a usage error."""
    from opseal.client.cli.charter_view import charter_json, charter_text
    from opseal.client.cli.codes import USAGE, CliError
    from opseal.client.cli.operations import _parse_area
    from opseal.crypto.charter import Charter, Member
    from opseal.crypto.keys import SigningKey

    seizures = _parse_area("seizures:coordinator,customs:coordinator,customs:since-join:0:172800")
    assert (seizures.rotation_period_s, seizures.history_window) == (0, 172800)
    plan = _parse_area("plan:coordinator,customs:coordinator:shared:7200")
    assert (plan.rotation_period, plan.history_window) == (7200, None)
    alerts = _parse_area("alerts:coordinator,customs:coordinator:since-join")
    assert alerts.history_window == 7 * 86400
    for bad in ("s:coordinator:coordinator:shared:0:60", "s:coordinator:coordinator:shared:0:x",
                "s:coordinator:coordinator:shared:0:3600:1"):  # fmt: skip
        with pytest.raises(CliError) as refused:
            _parse_area(bad)
        assert refused.value.code == USAGE
    root = SigningKey.generate().verify_key
    charter = Charter.create(
        operation_id="op", code="OP", name="Op", starts_at=0, ends_at=1, issued_at=0,
        members=[Member("wco", "WCO", "international", "coordinator", root)],
        areas=[plan, seizures],
    )  # fmt: skip
    assert charter.encoding == 4
    areas = {a["area"]: a["history_window_s"] for a in charter_json(charter)["areas"]}
    assert areas == {"plan": None, "seizures": 172800}
    text = "\n".join(charter_text(charter))
    assert "KEEPS SECRETS S" in text
    assert any(line.split()[:1] == ["seizures"] and "172800" in line for line in text.splitlines())
    assert any(line.split()[:1] == ["plan"] and line.split()[-1] == "all"
               for line in text.splitlines())  # fmt: skip
