"""Each crypto module declares its public surface in ``__all__``, and keeps to it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import opseal.crypto

MODULES = sorted(
    m.name
    for m in pkgutil.iter_modules(opseal.crypto.__path__, "opseal.crypto.")
    if m.name != "opseal.crypto.demo"
)


@pytest.mark.parametrize("name", MODULES)
def test_module_all_lists_exactly_its_public_definitions(name):
    """Every public class or function defined in the module is in ``__all__``, and vice versa."""
    module = importlib.import_module(name)
    defined = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == name
    }
    exported = set(module.__all__)
    assert defined <= exported
    assert all(hasattr(module, attr) for attr in exported)


def test_package_reexports_resolve():
    """Everything ``opseal.crypto`` exports exists."""
    for attr in opseal.crypto.__all__:
        assert getattr(opseal.crypto, attr) is not None
