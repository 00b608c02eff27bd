"""Lazy package re-exports: ``import landzoo.store`` (or ``.training``, ``.transfer``) does not pull in torch.

A package lists ``{name: module}`` and gets its ``__all__``, ``__getattr__`` and ``__dir__`` from
:func:`lazy_exports`; the module is imported on first access of one of its names.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: dict[str, str]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``(__all__, __getattr__, __dir__)`` for ``package`` re-exporting ``exports`` (name -> module path)."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(exports)

    return sorted(exports), __getattr__, __dir__
