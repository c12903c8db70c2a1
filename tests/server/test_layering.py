"""Views and services build no SQL: every query lives in ``opseal.server.storage``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parents[2] / "server"
BUILDERS = {"select", "insert", "update", "delete", "text"}
LAYERS = ("services", "http")


def _modules() -> list[Path]:
    return sorted(p for layer in LAYERS for p in (SERVER / layer).rglob("*.py"))


def query_builders(source: str) -> list[str]:
    """The SQLAlchemy query builders a module's source imports or reaches through a module."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            found += [f"{node.module}.{a.name}" for a in node.names if a.name in BUILDERS]
            found += [f"{node.module}.*" for a in node.names if a.name == "*"]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "sqlalchemy"]
        elif isinstance(node, ast.ImportFrom) and node.level and "tables" in (node.module or ""):
            found += [f"{node.module}.{a.name}" for a in node.names]
    return found


def test_the_scan_finds_builders_however_they_are_imported():
    """The scan reports builders imported by name, module imports of sqlalchemy and tables."""
    source = (
        "from sqlalchemy import select, func\n"
        "from sqlalchemy.sql import text as t\n"
        "import sqlalchemy as sa\n"
        "from ..storage.tables import areas\n"
        "from sqlalchemy.exc import IntegrityError\n"
    )
    assert query_builders(source) == [
        "sqlalchemy.select",
        "sqlalchemy.sql.text",
        "sqlalchemy",
        "storage.tables.areas",
    ]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_views_and_services_build_no_sql(path):
    """No module under server/services or server/http imports a query builder or a table."""
    assert _modules(), "the scan found no modules: the layout changed"
    assert query_builders(path.read_text()) == []
