"""A clean install: the wheel builds without a setuptools warning, holds the package data, and
nothing from the tests or tools; the library does not load the demo when imported."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIP = shutil.ignore_patterns(
    ".venv", ".git", "var", "build", "*.egg-info", "__pycache__", "node_modules"
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    """The project's wheel, built from a copy of the tree (so no build/ is left in it), and
    the build's output."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    shutil.copytree(ROOT, source, ignore=SKIP)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-w", str(tmp / "out"),
         "-v"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    [built] = (tmp / "out").glob("opseal-*.whl")
    return built, build.stdout + build.stderr


def test_the_wheel_builds_without_a_setuptools_warning_about_packages(wheel):
    """No package is left out of the configuration (the old opseal.client.schemas warning)."""
    _, output = wheel
    assert "absent from the `packages` configuration" not in output
    assert "SetuptoolsDeprecationWarning" not in output


def test_the_wheel_holds_the_package_data_and_nothing_from_tests_or_tools(wheel):
    """The seizure schema and the migration template ship; tests, bench and deploy do not."""
    built, _ = wheel
    names = zipfile.ZipFile(built).namelist()
    assert "opseal/client/schemas/seizure-record.v1.json" in names
    assert "opseal/migrations/script.py.mako" in names
    top = {name.split("/")[0] for name in names}
    assert top == {"opseal", built.name.split("-")[0] + "-0.1.0.dist-info"}
    parts = {name.split("/")[1] for name in names if name.startswith("opseal/")}
    assert parts == {"client", "crypto", "migrations", "server", "wire"}
    assert not [n for n in names if "/tests/" in n or n.endswith((".pyc", ".db", ".part"))]


def test_the_wheel_ships_the_built_web_app(wheel):
    """The web app's page, hashed assets and manifest ship in the wheel (design §17)."""
    manifest = ROOT / "server" / "web-app" / "manifest.json"
    if not manifest.exists():
        pytest.skip("the web app is not built here (make web-build needs node)")
    built, _ = wheel
    names = set(zipfile.ZipFile(built).namelist())
    listed = json.loads(manifest.read_text())["files"]
    assert {f"opseal/server/web-app/{name}" for name in [*listed, "manifest.json"]} <= names


def test_importing_the_client_does_not_load_the_demo():
    """The demo and its data generators stay out of a library import."""
    probe = (
        "import sys, opseal.client, opseal.client.client, opseal.client.cli; "
        "print(sorted(m for m in sys.modules if 'demo' in m))"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert run.stdout.strip() == "[]"
