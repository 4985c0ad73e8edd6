"""The public surface: ``__all__`` says what is public, ``dir()`` shows it, every name resolves.

As httpx's ``tests/test_exported_members.py``: a name is public exactly when it is in
``__all__``, so adding a name to the package without deciding that it is public fails here.
"""

from __future__ import annotations
import __future__

import importlib
import inspect
import re
import subprocess
import sys
from types import ModuleType

import pytest

import itagger_lib as it
from itagger_lib import errors

from .test_layers import MODULES

# Submodules are attributes of a package once imported; the one the surface exports on purpose.
EXPORTED_MODULES = {"errors"}
INCLUDED_PRIVATE = {"__version__"}


def test_all_imports_are_exported() -> None:
    defined = {
        name
        for name, value in vars(it).items()
        if (not name.startswith("_") or name in INCLUDED_PRIVATE)
        and (not isinstance(value, ModuleType) or name in EXPORTED_MODULES)
        and not isinstance(value, __future__._Feature)  # from __future__ import annotations
    }
    assert sorted(it.__all__) == sorted(defined | set(it._LAZY))


def test_dir_lists_the_lazy_names_and_each_resolves() -> None:
    assert set(it.__all__) <= set(dir(it))
    for name in it.__all__:
        assert getattr(it, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = it.Nope  # type: ignore[attr-defined]


def test_import_is_light() -> None:
    """``import itagger_lib`` imports no widget, no VLM SDK and no science family."""
    code = (
        "import sys, itagger_lib\n"
        "heavy = [m for m in ('ipywidgets', 'openai', 'anthropic', 'cv2', 'itagger_lib.widgets.explorer')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


@pytest.mark.parametrize("module", sorted(m for m in MODULES if ".migrations" not in m), ids=str)
def test_every_module_all_resolves(module: str) -> None:
    loaded = importlib.import_module(module)
    names = getattr(loaded, "__all__", ())
    for name in names:
        assert hasattr(loaded, name), f"{module}.__all__ names {name!r}, which it does not define"
    assert set(names) <= set(dir(loaded)), f"dir({module}) hides lazy names"


def test_the_error_tree_lists_every_error() -> None:
    classes = {
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, errors.ItaggerError)
    }
    assert set(errors.__all__) == classes
    tree = errors.__doc__ or ""
    missing = [name for name in classes if not re.search(rf"^\s*(?:[│├└─ ]*){name}\s", tree, re.MULTILINE)]
    assert not missing, f"errors.py's tree does not draw {missing}"
