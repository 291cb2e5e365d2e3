"""Public names that load on first use (PEP 562), so ``import emolens`` stays cheap.

A package lists, per private module, the names it re-exports from it; :func:`lazy_attributes`
returns the package's ``__getattr__`` (imports the module the first time a name is read, then keeps
the value in the package) and ``__dir__`` (lists those names before they are loaded, for tab
completion). Type checkers see the same names through ``if TYPE_CHECKING:`` imports.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(
    package: str, modules: Mapping[str, Iterable[str]], public: Iterable[str], *, submodules: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, whose names in ``modules[module]`` load lazily,
    as do its public ``submodules`` (``emolens.training`` works after a plain ``import emolens``)."""
    namespace = sys.modules[package].__dict__
    where = {name: module for module, names in modules.items() for name in names}
    packages = frozenset(submodules)
    listed = sorted({*public, *where, *packages})

    def __getattr__(name: str) -> Any:
        if name in packages:
            return importlib.import_module(f".{name}", package)  # importing sets the attribute too
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name], package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *listed})

    return __getattr__, __dir__
