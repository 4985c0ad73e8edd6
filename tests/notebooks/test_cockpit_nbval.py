"""Every cockpit notebook passes ``pytest --nbval-lax`` on an empty and on a populated
workspace, on SQLite and PostgreSQL (the workspace reaches the kernel through the environment)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.notebooks.conftest import COCKPIT, REPO

pytestmark = pytest.mark.notebooks


def nbval(env: dict[str, str], tmp_path, notebooks=COCKPIT) -> subprocess.CompletedProcess[str]:
    ini = tmp_path / "nbval.ini"
    ini.write_text("[pytest]\n")  # not the project's addopts/testpaths
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--nbval-lax",
        "--nbval-current-env",
        "-q",
        "-p",
        "no:cacheprovider",
        "-c",
        str(ini),
        "--rootdir",
        str(REPO),
        *map(str, notebooks),
    ]
    return subprocess.run(
        command,
        cwd=tmp_path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("populated", [False, True], ids=["empty", "with-images"])
def test_cockpit_notebooks_under_nbval(workspace, workspace_env, sample_dir, tmp_path, populated) -> None:
    assert {p.name for p in COCKPIT} >= {
        "00_Admin.ipynb",
        "01_Upload.ipynb",
        "03_Review.ipynb",
        "04_Explore.ipynb",
    }
    if populated:
        workspace.ingest([str(p) for p in sorted(sample_dir.glob("*.jpg"))[:3]], progress=False)
    result = nbval(workspace_env, tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout.splitlines()[-1]
    assert workspace.status()["images"] == (3 if populated else 0)  # ran against this workspace


def test_admin_notebook_reports_this_workspace(workspace, workspace_env, sample_dir, monkeypatch) -> None:
    import nbclient
    import nbformat

    workspace.ingest([str(p) for p in sorted(sample_dir.glob("*.jpg"))[:2]], progress=False)
    for name, value in workspace_env.items():
        monkeypatch.setenv(name, value)
    notebook = nbformat.read(str(REPO / "notebooks" / "00_Admin.ipynb"), 4)
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    text = "".join(
        str(o.get("data", {}).get("text/plain", "")) + o.get("text", "")
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.outputs
    )
    assert "'images': 2" in text and "'schema_current': True" in text
    assert any(
        "application/vnd.jupyter.widget-view+json" in o.get("data", {})
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.outputs
    )
