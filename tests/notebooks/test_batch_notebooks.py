"""Every batch notebook runs through papermill (via ``run_batch``) with its defaults and with
non-default parameters, on SQLite and PostgreSQL."""

from __future__ import annotations

import pandas as pd
import pytest

from itagger_lib.batch import run_batch

pytestmark = pytest.mark.notebooks


def outputs(result) -> str:
    import nbformat

    notebook = nbformat.read(str(result.output), 4)
    return "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)


@pytest.mark.parametrize(
    "parameters",
    [
        {},
        {
            "n_images": 3,
            "image_size": 160,
            "seed": 7,
            "vlm_dry_run": True,
            "n_simulated_raters": 2,
            "out_dir": "elsewhere",
        },
    ],
    ids=["defaults", "custom"],
)
def test_demo(workspace, parameters) -> None:
    result = run_batch(workspace, "demo", parameters)
    assert result.ok, result.error
    text = outputs(result)
    out = result.output.parent / parameters.get("out_dir", "results")
    assert f"Results are in {out}" in text
    assert f"Results are in {out}" in result.last_output  # what `itagger batch demo` prints
    assert len(workspace.images()) == parameters.get("n_images", 6)
    assert (out / "export").is_dir() and any((out / "export").iterdir())
    kinds = set(workspace.runs()["kind"])
    assert {"batch", "ingest"} <= kinds


def test_science_defaults_on_an_empty_workspace_says_what_to_do(workspace) -> None:
    result = run_batch(workspace, "science")
    assert result.ok, result.error
    assert "No images in the workspace" in outputs(result)


def test_science_with_parameters(workspace, sample_dir) -> None:
    workspace.ingest([str(p) for p in sorted(sample_dir.glob("*.jpg"))[:3]], progress=False)
    result = run_batch(workspace, "science", {"limit": 2, "out_csv": "m.csv", "workers": 1})
    assert result.ok, result.error
    metrics = pd.read_csv(result.output.parent / "m.csv")
    assert len(metrics) == 2
    assert (workspace.runs()["kind"] == "science").sum() == 1


@pytest.mark.parametrize("parameters", [{}, {"format": "csv", "out_dir": "tables"}], ids=["defaults", "csv"])
def test_export(workspace, sample_dir, parameters) -> None:
    workspace.ingest([str(sample_dir)], progress=False)
    result = run_batch(workspace, "export", parameters)
    assert result.ok, result.error
    folder = result.output.parent / parameters.get("out_dir", "export")
    suffix = parameters.get("format", "parquet")
    assert list(folder.rglob(f"*.{suffix}")), f"no .{suffix} files in {folder}"
