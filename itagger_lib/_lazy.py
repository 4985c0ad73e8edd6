"""Lazy package surfaces: names imported from their module on first use, listed by ``dir()``.

As ``lazy_loader.attach`` (scikit-image): a package keeps its ``__all__`` and a map of name
→ module, and gets the module-level ``__getattr__`` and ``__dir__`` from :func:`attach`.
Type checkers see the names through the package's ``if TYPE_CHECKING:`` imports.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping

__all__ = ["attach"]


def attach(
    package: str, lazy: Mapping[str, str], public: Iterable[str], defined: Callable[[], Iterable[str]]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``.

    ``lazy`` maps a name to the module that defines it; ``public`` is the package's
    ``__all__``; ``defined`` returns the names the package has now (its ``globals``).
    """
    listed = set(public)

    def __getattr__(name: str) -> object:
        if name in lazy:
            return getattr(importlib.import_module(lazy[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(defined()) | listed)

    return __getattr__, __dir__
