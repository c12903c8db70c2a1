"""The crypto self-demo plays its whole scenario."""

from __future__ import annotations

from opseal.crypto import demo


def test_demo_scenario_holds_every_outcome(capsys):
    """The demo exits 0 and reports each outcome as ok, none as failed."""
    assert demo.main([]) == 0
    out = capsys.readouterr().out
    assert "FAILED" not in out
    assert out.count("[ok]") == 8
    assert "All outcomes held." in out
