"""The batch notebook (papermill) and the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from itagger_lib.cli import main

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "batch" / "vlm_rating.ipynb"


def test_notebook_is_stored_without_outputs() -> None:
    notebook = json.loads(NOTEBOOK.read_text())
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert "parameters" in code[0]["metadata"]["tags"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in code)


@pytest.mark.notebooks
def test_notebook_runs_an_audit(tmp_path: Path, sample_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd
    import papermill

    import itagger_lib as it

    monkeypatch.setenv("ITAGGER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ITAGGER_DATABASE_URL", raising=False)
    monkeypatch.delenv("ITAGGER_STORE", raising=False)
    with it.Workspace() as ws:
        ws.ingest(sample_dir, progress=False)
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(tmp_path / "out.ipynb"),
        cwd=str(tmp_path),
        parameters={"mode": "audit", "attributes": ["coherence"]},
        progress_bar=False,
    )
    table = pd.read_csv(tmp_path / "vlm_audit.csv", index_col="attribute")
    assert list(table.index) == ["coherence"] and table.loc["coherence", "answers"] == 9


def test_cli_codebook_and_vlm(workspace: Any, sample_dir: Path, tmp_path: Path, capsys: Any) -> None:
    workspace.ingest(sample_dir, progress=False)
    base = ["--database-url", workspace.settings.database_url, "--store", str(workspace.store.root)]
    assert main([*base, "codebook", "load"]) == 0
    assert "stored as id 1" in capsys.readouterr().out
    assert main([*base, "codebook", "show"]) == 0
    assert "key: coherence" in capsys.readouterr().out
    assert main([*base, "vlm", "dry-run", "--provider", "stub", "--repeats", "2"]) == 0
    assert "24 requests to send" in capsys.readouterr().out
    assert main([*base, "vlm", "rate", "--provider", "stub", "-a", "coherence", "--sample", "4"]) == 0
    assert "4 rated" in capsys.readouterr().out
    assert main([*base, "vlm", "prices", "set", "openai", "gpt-x", "1", "2"]) == 0
    assert "gpt-x" in capsys.readouterr().out
    assert main([*base, "vlm", "rate", "--provider", "openai", "--model", "unpriced"]) == 1
    assert "no price for openai/unpriced" in capsys.readouterr().err
    assert main([*base, "vlm", "audit", "--provider", "stub", "-k", "2", "-a", "setting", "1", "2"]) == 0
    assert "modal_share" in capsys.readouterr().out
