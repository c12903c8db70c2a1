"""The package structure: no import cycles between ``opseal`` modules, and small modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"opseal.client": "client", "opseal.crypto": "crypto", "opseal.server": "server",
            "opseal.migrations": "migrations"}  # fmt: skip
MAX_LINES = 500
MARKER = "Long because:"


def _modules() -> dict[str, Path]:
    """Every ``opseal`` module name and its file (packages by their ``__init__.py``)."""
    found = {}
    for package, folder in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The ``opseal`` modules ``name`` imports anywhere in its file (``TYPE_CHECKING`` too)."""
    is_package = path.name == "__init__.py"
    base = name.split(".") if is_package else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            prefix = base[: len(base) - node.level + 1] if node.level else []
            source = ".".join([*prefix, *(node.module.split(".") if node.module else [])])
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                out.add(sub if sub in MODULES else source)
    return {m for m in out if m in MODULES and m != name}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path of module names, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_cycle_finder_reports_a_cycle():
    """The cycle finder names the modules of a cycle closed through any import."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycle(graph) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_opseal_module_imports_itself_back():
    """No chain of imports between ``opseal`` modules, type-checking ones included, loops."""
    graph = {name: _imports(name, path) for name, path in MODULES.items()}
    assert _cycle(graph) is None


# Run in a fresh interpreter: the third-party libraries are loaded once, then each module is
# imported in a child forked before any ``opseal`` module was loaded, so it is alone there.
IMPORT_EACH = """
import importlib, os, sys
import aiohttp, alembic, sqlalchemy.ext.asyncio, prometheus_client, structlog, cryptography
failed = 0
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException as exc:
            print(f"{name}: {type(exc).__name__}: {exc}", flush=True)
            os._exit(1)
        os._exit(0)
    failed += os.waitpid(pid, 0)[1] != 0
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_alone():
    """Each ``opseal`` module imports with no other ``opseal`` module loaded before it
    (alembic's ``env.py`` runs only inside alembic)."""
    names = [n for n in MODULES if not n.endswith(("__main__", "migrations.env"))]
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_EACH, *names], capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def _docstring(path: Path) -> str:
    return ast.get_docstring(ast.parse(path.read_text())) or ""


@pytest.mark.parametrize("folder", ["client", "server", "crypto"])
def test_long_modules_say_why(folder):
    """A module over 500 lines says in its docstring why it is long ("Long because: ...")."""
    too_long = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / folder).rglob("*.py"))
        if len(path.read_text().splitlines()) > MAX_LINES and MARKER not in _docstring(path)
    ]
    assert too_long == []
