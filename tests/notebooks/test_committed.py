"""Every committed notebook is stored clean: no outputs, no execution counts."""

from __future__ import annotations

import json

import pytest

from tests.notebooks.conftest import NOTEBOOKS

ALL = sorted(NOTEBOOKS.rglob("*.ipynb"))


def test_there_are_notebooks() -> None:
    names = {p.name for p in ALL}
    assert {
        "00_Admin.ipynb",
        "01_Upload.ipynb",
        "demo.ipynb",
        "science.ipynb",
        "export.ipynb",
    } <= names


@pytest.mark.parametrize(
    "path",
    [p for p in ALL if ".ipynb_checkpoints" not in p.parts],
    ids=lambda p: str(p.relative_to(NOTEBOOKS)),
)
def test_committed_without_outputs(path) -> None:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        assert cell.get("outputs") == [], (
            f"{path.name} cell {index} has outputs; clear them before committing"
        )
        assert cell.get("execution_count") is None, f"{path.name} cell {index} has an execution count"


@pytest.mark.parametrize("path", sorted((NOTEBOOKS / "batch").glob("*.ipynb")), ids=lambda p: p.name)
def test_batch_notebooks_have_a_parameters_cell(path) -> None:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    tagged = [c for c in notebook["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
