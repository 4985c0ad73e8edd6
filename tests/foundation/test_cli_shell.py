"""The shell speaks shell: closed pipes, ``--format``, file names beside ids, CLI words in errors."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from itagger_lib.cli import main
from itagger_lib.commands._tables import format_text, print_table
from itagger_lib.errors import ImageNotFoundError, remedy, speak_shell

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> Path:
    home = tmp_path_factory.mktemp("shell")
    assert main(["--home", str(home), "ingest", str(sample_dir)]) == 0
    return home


def _itagger(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ITAGGER_")}
    command = [sys.executable, "-m", "itagger_lib.cli", "--home", str(home), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, check=False)


def test_a_closed_pipe_ends_quietly(home: Path) -> None:
    # `true` exits at once: every line itagger writes meets a closed pipe
    cmd = f"{sys.executable} -m itagger_lib.cli --home {home} images | true; echo ${{PIPESTATUS[0]}}"
    done = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120, check=False)
    assert done.stderr == "", done.stderr
    assert done.stdout.strip() == "141"  # 128 + SIGPIPE, as `seq 100000 | true` reports
    head = subprocess.run(
        ["bash", "-c", f"{sys.executable} -m itagger_lib.cli --home {home} images | head -3"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert head.stderr == "" and len(head.stdout.splitlines()) == 3


def test_images_as_text_csv_and_json(home: Path) -> None:
    text = _itagger(home, "images").stdout.splitlines()
    assert text[0].split()[:3] == ["id", "file", "format"] and len(text) == 13
    assert text[1].split()[0] == "1" and text[1].split()[1].endswith(
        (".jpg", ".png", ".webp", ".tif", ".tiff", ".bmp")
    )
    widths = {line.index("  ", len(line.split()[0])) for line in text[1:]}  # ids right-aligned
    assert len(widths) == 1
    csv = pd.read_csv(io.StringIO(_itagger(home, "images", "--format", "csv").stdout))
    assert {"id", "sha256", "source_name", "source_path"} <= set(csv.columns) and len(csv) == 12
    records = json.loads(_itagger(home, "images", "--format", "json").stdout)
    assert len(records) == 12 and records[0]["id"] == 1 and "source_name" in records[0]


def test_runs_and_failures_as_tables(home: Path, tmp_path: Path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    assert _itagger(home, "ingest", str(tmp_path)).returncode == 1
    runs = _itagger(home, "runs", "--kind", "ingest").stdout.splitlines()
    assert runs[0].split()[:3] == ["id", "kind", "status"] and len(runs) == 3
    run_id = runs[1].split()[0]
    failures = _itagger(home, "failures", run_id).stdout
    assert "broken.jpg" in failures and "not a readable image" in failures
    assert _itagger(home, "failures", "999").stdout.strip() == "no failures recorded for run 999"


def test_errors_name_commands_in_the_shell_and_calls_in_python(home: Path) -> None:
    done = _itagger(home, "science", "no-such-image")
    assert done.returncode == 1 and "see `itagger images`" in done.stderr and "ws." not in done.stderr
    from itagger_lib import Workspace

    with Workspace(home=home) as ws, pytest.raises(ImageNotFoundError, match=r"see ws\.images\(\)"):
        ws.image("no-such-image")
    previous = speak_shell()
    try:
        assert remedy("ws.failures(3)", "itagger failures 3") == "itagger failures 3"
    finally:
        speak_shell(previous)
    assert remedy("ws.failures(3)", "itagger failures 3") == "ws.failures(3)"


def test_text_tables_align_and_say_when_empty() -> None:
    frame = pd.DataFrame({"name": ["a", "bbbb"], "value": [1.5, 10.25], "note": [None, "x" * 80]})
    lines = format_text(frame).splitlines()
    assert lines[0] == "name  value  note"
    assert lines[1] == "a       1.5"
    assert lines[2].startswith("bbbb  10.25  xxx") and lines[2].endswith("…") and len(lines[2]) == 73
    out = io.StringIO()
    print_table(frame.iloc[:0], "text", empty="no prices set", out=out)
    assert out.getvalue() == "no prices set\n"
    out = io.StringIO()
    print_table(frame.iloc[:0], "json", out=out)
    assert out.getvalue() == "[]\n"
