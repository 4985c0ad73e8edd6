"""The house: the import graph has no cycle and no upward import; modules stay small.

The layers are read from the picture in ``docs/design.md`` (the ```` ```layers ```` block),
so the picture and the code cannot drift apart. Imports are read with ``ast`` from the
source, all of them: at module level, under ``if TYPE_CHECKING:`` and inside functions.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "itagger_lib"
DESIGN = ROOT / "docs" / "design.md"
MAX_LINES = 450
LONG_REASON = "This module is long because"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str) -> str:
    """The module an import of ``name`` loads: itself, or the module an attribute lives in."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def imports_of(module: str) -> Iterator[tuple[str, int]]:
    """Every ``itagger_lib`` module ``module`` imports anywhere in its source, with the line."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target == "itagger_lib" or target.startswith("itagger_lib."):
                yield _resolve(target), node.lineno


GRAPH = {module: sorted({target for target, _ in imports_of(module)} - {module}) for module in MODULES}


def read_layers() -> list[tuple[str, list[str]]]:
    """``[(layer, [module or package/ ...]), ...]`` from the top row down, from docs/design.md."""
    block = re.search(r"```layers\n(.*?)```", DESIGN.read_text(encoding="utf-8"), re.DOTALL)
    assert block, "docs/design.md lost its ```layers picture"
    rows = []
    for line in block.group(1).splitlines():
        if line.strip():
            name, _, members = line.strip().partition(" ")
            rows.append((name, [m.strip() for m in members.split("·") if m.strip()]))
    return rows


LAYERS = read_layers()


def layer_of(module: str) -> int:
    """The row of ``module``, counted from the bottom (0 = base); -1 when in no row."""
    relative = module.removeprefix("itagger_lib").removeprefix(".")
    for rank, (_, members) in enumerate(reversed(LAYERS)):
        for member in members:
            if member == "__init__" and module == "itagger_lib":
                return rank
            if member.endswith("/") and (relative + ".").startswith(member.replace("/", ".")):
                return rank
            if relative == member:
                return rank
    return -1


def test_the_picture_names_every_module_once() -> None:
    unplaced = [module for module in MODULES if layer_of(module) < 0]
    assert not unplaced, f"modules in no layer of docs/design.md: {unplaced}; add them to the picture"
    members = [member for _, row in LAYERS for member in row]
    assert len(members) == len(set(members)), f"a module is in two layers: {members}"


def test_no_module_imports_a_higher_layer() -> None:
    names = [name for name, _ in reversed(LAYERS)]
    upward = [
        f"{module} ({names[layer_of(module)]}) imports {target} ({names[layer_of(target)]}) on line {line}"
        for module in MODULES
        for target, line in imports_of(module)
        if layer_of(target) > layer_of(module)
    ]
    assert not upward, "imports against the layers of docs/design.md:\n" + "\n".join(upward)


def _cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in GRAPH:
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_has_no_cycle() -> None:
    assert _cycles() == []


def test_the_cycle_finder_finds_a_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(GRAPH, "itagger_lib.store", [*GRAPH["itagger_lib.store"], "itagger_lib.runs"])
    monkeypatch.setitem(GRAPH, "itagger_lib.runs", [*GRAPH["itagger_lib.runs"], "itagger_lib.store"])
    assert ["itagger_lib.runs", "itagger_lib.store"] in _cycles()


def test_type_only_and_local_imports_are_read() -> None:
    """The reader sees imports under TYPE_CHECKING and inside functions, not just at the top."""
    workspace_imports = {target for target, _ in imports_of("itagger_lib.workspace")}
    assert "itagger_lib.vlm.report" in workspace_imports  # under TYPE_CHECKING
    assert "itagger_lib.vlm.rating" in workspace_imports  # inside rate_with_vlm


@pytest.mark.parametrize("module", sorted(MODULES), ids=str)
def test_modules_are_small_or_say_why(module: str) -> None:
    path = MODULES[module]
    lines = len(path.read_text(encoding="utf-8").splitlines())
    if lines <= MAX_LINES:
        return
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    assert LONG_REASON in docstring, (
        f"{path.relative_to(ROOT)} has {lines} lines (> {MAX_LINES}): split it, or say in its "
        f"docstring why not ({LONG_REASON!r} …)"
    )
