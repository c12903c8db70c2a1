"""The distribution ships every subpackage under the ``opseal`` namespace, and only those."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP_LEVEL = {"opseal.client": "client", "opseal.crypto": "crypto", "opseal.server": "server",
             "opseal.migrations": "migrations", "opseal.wire": "wire"}  # fmt: skip


def _config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _packages_on_disk() -> set[str]:
    found = set()
    for package, folder in TOP_LEVEL.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            found.add(".".join([package, *relative.parts]))
    return found


def test_every_package_folder_is_listed_in_pyproject():
    """The package list in pyproject.toml equals the packages found on disk."""
    assert set(_config()["packages"]) == _packages_on_disk()


def test_top_level_folders_map_into_the_opseal_namespace():
    """server/, client/, crypto/ and migrations/ install as opseal.*; no opseal/__init__.py."""
    assert _config()["package-dir"] == TOP_LEVEL
    assert not (ROOT / "opseal" / "__init__.py").exists()


def test_every_folder_with_python_code_is_a_package():
    """A folder holding modules but no __init__.py would silently miss the wheel."""
    for folder in TOP_LEVEL.values():
        for module in (ROOT / folder).rglob("*.py"):
            assert (module.parent / "__init__.py").exists(), f"{module.parent} lacks __init__.py"
