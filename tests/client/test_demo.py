"""The demo (`make demo`): Operation STOP V played on a real server, every outcome asserted."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from opseal.client import demo


def test_demo_holds_every_outcome_and_stops_its_server(tmp_path):
    """Run without serving, the demo reaches every outcome of the scenario and exits 0."""
    lines: list[str] = []
    root = tmp_path / "demo"
    result = demo.run(["--no-serve", "--dir", str(root), "--port", "0"], out=lines.append)
    failed = {name: seen for name, (ok, seen) in result.outcomes.items() if not ok}
    assert failed == {}
    assert set(result.outcomes) == set(demo.OUTCOMES)
    assert result.exit_code == 0
    text = "\n".join(lines)
    assert "sees acknowledged: de-customs, fr-customs; still to acknowledge: es-customs" in text
    assert "submits 200 records" in text
    assert "wco-ocu opens the photo: verified" in text
    assert "brandx (stakeholder): plan: no access | seizures: no access | alerts: no access" in text
    assert "interpol (partner): plan: no access | seizures: 201 | alerts: 2" in text
    assert (root / "files" / "operational-plan.pdf").read_bytes().startswith(b"%PDF-1.4")
    assert (root / "profiles" / "de-ncen" / "profile.json").exists()
    with pytest.raises(urllib.error.URLError, match="refused"):
        urllib.request.urlopen(result.server_url + "/healthz", timeout=2)


def test_demo_refuses_a_folder_it_did_not_make(tmp_path, capsys):
    """A non-empty folder without the demo's marker is left alone and the demo exits 2."""
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    assert demo.main(["--no-serve", "--dir", str(tmp_path)]) == 2
    assert keep.read_text() == "mine"
    assert "was not made by the demo" in capsys.readouterr().err
