"""The TypeScript API types (``web/src/client/wire.ts``) are generated from today's OpenAPI
document: the committed file equals a fresh run of ``tests/web/wire_types.py`` (no drift)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import node_args


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "wire_types", Path(__file__).with_name("wire_types.py")
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_api_types_match_the_openapi_document() -> None:
    """A change of the wire contract without regenerating the TypeScript types fails here."""
    node_args()  # skips (or fails under CI) without node
    generator = _generator()
    if not generator.GENERATOR.exists():
        pytest.fail(f"{generator.GENERATOR} is missing: run `make web-build` first")
    assert generator.TARGET.read_text() == generator.generate(), (
        "web/src/client/wire.ts is stale: run `.venv/bin/python tests/web/wire_types.py`"
    )
