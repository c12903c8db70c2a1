"""The web app's build is deterministic and is what the installed package ships; the
operator's `opseal-server status` publishes its bundle hash (design §17)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from opseal.server.cli import main
from opseal.wire.bundle import Bundle, BundleError, differences

from .browser import WEB
from .conftest import require

BUNDLER = WEB / "build" / "tools" / "bundle.js"


def build(out) -> Bundle:
    done = subprocess.run(["node", str(BUNDLER), "--out", str(out)], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    bundle = Bundle.load(out)
    assert bundle is not None
    return bundle


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A build made now from the sources, in a folder of its own."""
    require(shutil.which("node") is not None and BUNDLER.exists(), "node or the bundler is missing")
    out = tmp_path_factory.mktemp("bundle")
    return out, build(out)


def test_a_fresh_build_is_byte_identical_to_the_installed_bundle(bundle, fresh):
    """Building again from the sources gives the same files and bundle hash as the build
    `make web-build` installed (a stale or hand-edited installed bundle fails here)."""
    _, again = fresh
    assert again.files == bundle.files
    assert again.bundle_hash == bundle.bundle_hash
    assert differences(bundle.hashes, dict(again.hashes)) == []


def test_a_file_that_does_not_match_the_manifest_is_refused(fresh, tmp_path):
    """A folder whose script was edited after the build does not load."""
    shutil.copytree(fresh[0], tmp_path, dirs_exist_ok=True)
    [script] = (tmp_path / "assets").glob("*.js")
    script.write_bytes(script.read_bytes() + b";")
    with pytest.raises(BundleError, match=rf"assets/{script.name} does not match its manifest"):
        Bundle.load(tmp_path)


def test_status_prints_the_bundle_hash(bundle, tmp_path, monkeypatch, capsys):
    """`opseal-server status` states the installed app's bundle hash next to the log key."""
    monkeypatch.setenv("OPSEAL_DATABASE_URL", f"sqlite:///{tmp_path / 'opseal.db'}")
    monkeypatch.setattr("opseal.server.cli.configure_logging", lambda *_: None)
    assert main(["migrate"]) in (0, None)
    assert main(["init"]) in (0, None)
    capsys.readouterr()
    assert main(["status"]) in (0, None)
    status = json.loads(capsys.readouterr().out)
    assert status["web_app"] == {"built": True, "bundle_hash": bundle.bundle_hash,
                                 "files": len(bundle.files)}  # fmt: skip
    assert status["log_key_fingerprint"]
