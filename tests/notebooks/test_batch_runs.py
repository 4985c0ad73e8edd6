"""``run_batch`` / ``itagger batch``: recorded runs, failures with their error, no secrets."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from itagger_lib.batch import resolve_notebook, run_batch
from itagger_lib.cli import main
from itagger_lib.errors import BatchError

pytestmark = pytest.mark.notebooks


def write_notebook(path: Path, parameters: str, *cells: str) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    first = nbformat.v4.new_code_cell(parameters)
    first.metadata["tags"] = ["parameters"]
    notebook.cells = [first, *(nbformat.v4.new_code_cell(c) for c in cells)]
    nbformat.write(notebook, str(path))
    return path


def test_success_is_a_recorded_run_writing_to_the_same_workspace(workspace, sample_dir, tmp_path) -> None:
    notebook = write_notebook(
        tmp_path / "ingest_one.ipynb",
        "pattern = '*.jpg'\nlimit = 1",
        "import itagger_lib as it, os\nfrom pathlib import Path\n"
        f"files = sorted(Path({str(sample_dir)!r}).glob(pattern))[:limit]\n"
        "report = it.Workspace().ingest([str(f) for f in files], progress=False)\n"
        "Path('added.txt').write_text(str(len(report.added)))",
    )
    result = run_batch(workspace, notebook, {"limit": 2})
    assert result.ok, result.error
    assert result.output == workspace.home / "runs" / str(result.run_id) / "ingest_one.ipynb"
    assert result.output.is_file()
    assert (result.output.parent / "added.txt").read_text() == "2"  # the run folder is the cwd
    assert len(workspace.images()) == 2
    run = workspace.runs(kind="batch").loc[result.run_id]
    assert run["status"] == "succeeded"
    assert run["parameters"] == {"notebook": str(notebook.resolve()), "parameters": {"limit": 2}}
    assert run["output_path"] == str(result.output)
    assert run["version"] and run["finished_at"] is not None and run["started_at"] is not None
    executed = result.output.read_text()
    assert "injected-parameters" in executed and "limit = 2" in executed
    assert workspace.settings.database_url.split("//")[-1] not in executed  # location via env only


def test_failure_is_a_failed_run_with_the_cells_error(workspace, tmp_path) -> None:
    notebook = write_notebook(tmp_path / "boom.ipynb", "divisor = 1", "print(1 / divisor)")
    result = run_batch(workspace, notebook, {"divisor": 0})
    assert not result.ok and result.status == "failed"
    assert "ZeroDivisionError" in (result.error or "")
    run = workspace.runs(kind="batch").loc[result.run_id]
    assert run["status"] == "failed" and "ZeroDivisionError" in run["error"]
    assert run["output_path"] == str(result.output)
    assert "ZeroDivisionError" in result.output.read_text()  # the traceback is kept


def test_secrets_and_unknown_parameters_are_refused_before_running(workspace, tmp_path) -> None:
    notebook = write_notebook(tmp_path / "p.ipynb", "n = 1\napi_key = None", "pass")
    with pytest.raises(BatchError, match="looks like a secret"):
        run_batch(workspace, notebook, {"api_key": "x"})
    with pytest.raises(BatchError, match="looks like a secret"):
        run_batch(workspace, notebook, {"n": "sk-abcdefghijklmnop1234"})
    with pytest.raises(BatchError, match=r"no parameter 'm'.*n"):
        run_batch(workspace, notebook, {"m": 2})
    assert workspace.runs(kind="batch").empty


def test_names_resolve_to_the_batch_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_notebook("demo").name == "demo.ipynb"
    assert resolve_notebook("science.ipynb").parent.name == "batch"
    local = write_notebook(tmp_path / "mine.ipynb", "x = 1")
    assert resolve_notebook("mine") == local
    with pytest.raises(BatchError, match="demo"):
        resolve_notebook("no_such_notebook")


def test_cli_exit_status_and_yaml_parameters(workspace, tmp_path, capsys) -> None:
    notebook = write_notebook(
        tmp_path / "cli.ipynb",
        "a = 1\nb = 'x'\nc = False",
        "import json; open('p.json', 'w').write(json.dumps([a, b, c]))\nassert a != 13",
    )
    base = [
        "--database-url",
        workspace.settings.database_url,
        "--store",
        str(workspace.store.root),
        "--home",
        str(workspace.home),
        "batch",
        str(notebook),
    ]
    assert main([*base, "-p", "a", "2", "-y", "{b: hello, c: true}"]) == 0
    out = capsys.readouterr().out
    run_id = int(out.split()[2])
    saved = workspace.home / "runs" / str(run_id) / "p.json"
    assert json.loads(saved.read_text()) == [2, "hello", True]
    assert main([*base, "-p", "a", "13"]) == 1
    err = capsys.readouterr().err
    assert "AssertionError" in err and "failed" in err
    assert main([*base, "-p", "password", "hunter2"]) == 1
    assert "hunter2" not in capsys.readouterr().err


@pytest.mark.skipif(__import__("os").name != "posix", reason="Unix sockets")
def test_batch_kernels_talk_over_unix_sockets_not_tcp(workspace, tmp_path, capfd) -> None:
    """No kernel port on loopback for other local users, and no "without encryption" warning."""
    notebook = write_notebook(
        tmp_path / "transport.ipynb",
        "x = 1",
        "from ipykernel.kernelapp import IPKernelApp\nfrom pathlib import Path\n"
        "app = IPKernelApp.instance()\n"
        "Path('transport.txt').write_text(app.transport + ' ' + str(app.ip))",
    )
    result = run_batch(workspace, notebook, {})
    assert result.ok, result.error
    transport, where = (result.output.parent / "transport.txt").read_text().split(" ", 1)
    assert transport == "ipc" and "127.0.0.1" not in where
    assert "without encryption" not in capfd.readouterr().err
