"""02_Tag.ipynb is committed without outputs and, run headless, says what to do next."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "02_Tag.ipynb"


def test_committed_without_outputs() -> None:
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)


@pytest.mark.notebooks
@pytest.mark.parametrize("images", [False, True])
def test_runs_headless_and_says_what_to_do(
    tmp_path: Path, sample_dir: Path, images: bool, monkeypatch
) -> None:
    import nbformat
    from nbclient import NotebookClient

    from itagger_lib import Workspace

    home = tmp_path / "home"
    url = f"sqlite:///{home / 'itagger.db'}"
    if images:
        with Workspace(home=home, database_url=url, store=home / "store") as ws:
            ws.ingest(sample_dir, progress=False)
    monkeypatch.setenv("ITAGGER_HOME", str(home))
    monkeypatch.setenv("ITAGGER_DATABASE_URL", url)
    monkeypatch.setenv("ITAGGER_STORE", str(home / "store"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert ("create_study" in text) if images else ("01_Upload.ipynb" in text)
