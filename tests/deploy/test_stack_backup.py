"""What the stack's backup service adds to a workbench backup: the hub's database, the schedule.

The home volumes need a Docker engine; tests/stack/test_stack.py backs them up and restores
them in the real stack.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from itagger_lib.errors import ConfigError, OperationsError
from itagger_lib.ops import stack
from itagger_lib.ops.backup import backup, verify


def _hub_db(path: Path, users: list[str]) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS users (name TEXT)")
        conn.execute("DELETE FROM users")
        conn.executemany("INSERT INTO users VALUES (?)", [(u,) for u in users])


def _users(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT name FROM users ORDER BY name")]


def test_backup_holds_the_hub_database_and_restore_puts_it_back(workspace, tmp_path: Path) -> None:
    hub_db = tmp_path / "hub" / "jupyterhub.sqlite"
    hub_db.parent.mkdir()
    _hub_db(hub_db, ["admin", "tagger-a"])
    parts = stack.StackParts(hub_db=hub_db)
    manifest = backup(workspace, tmp_path / "b", extras=parts.writers())
    assert manifest["hub_db"] == stack.HUB_DB_FILE and stack.HUB_DB_FILE in manifest["files"]
    verify(tmp_path / "b")
    _hub_db(hub_db, ["admin"])  # the disaster
    stack.restore_hub_db(tmp_path / "b", hub_db)
    assert _users(hub_db) == ["admin", "tagger-a"]
    (tmp_path / "b" / stack.HUB_DB_FILE).write_bytes(b"tampered")
    with pytest.raises(OperationsError, match="changed"):
        verify(tmp_path / "b")


def test_a_missing_hub_database_is_named(workspace, tmp_path: Path) -> None:
    parts = stack.StackParts(hub_db=tmp_path / "nope.sqlite")
    with pytest.raises(OperationsError, match=r"nope\.sqlite not found; set ITAGGER_HUB_DB"):
        backup(workspace, tmp_path / "b", extras=parts.writers())


def test_parts_from_the_environment() -> None:
    assert stack.StackParts.from_env({}) == stack.StackParts()
    parts = stack.StackParts.from_env(
        {
            "ITAGGER_HUB_DB": "/srv/h.sqlite",
            "ITAGGER_HOME_VOLUMES": "itagger-home-",
            "ITAGGER_SINGLEUSER_IMAGE": "i:1",
        }
    )
    assert parts.hub_db == Path("/srv/h.sqlite") and len(parts.writers()) == 2
    with pytest.raises(ConfigError, match="ITAGGER_SINGLEUSER_IMAGE"):
        stack.StackParts.from_env({"ITAGGER_HOME_VOLUMES": "itagger-home-"})


def test_home_archives_that_escape_the_home_are_refused(tmp_path: Path) -> None:
    import io
    import tarfile

    def archive(name: str) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
        return buf.getvalue()

    stack._check_home_archive(archive("jovyan/notes.txt"), "v")
    for bad in ("../etc/passwd", "/etc/passwd", "other/x", "jovyan/../../x"):
        with pytest.raises(OperationsError, match="outside the home"):
            stack._check_home_archive(archive(bad), "v")


def test_schedule_times_and_pruning() -> None:
    at = stack.parse_time_of_day("02:30")
    assert stack.next_run(dt.datetime(2026, 12, 6, 1, 0, tzinfo=dt.UTC), at) == dt.datetime(
        2026, 12, 6, 2, 30, tzinfo=dt.UTC
    )
    assert stack.next_run(dt.datetime(2026, 12, 6, 2, 30, tzinfo=dt.UTC), at).day == 7
    for bad in ("2:3", "24:00", "noon"):
        with pytest.raises(ConfigError, match="ITAGGER_BACKUP_AT"):
            stack.parse_time_of_day(bad)
    names = ["auto-2026-12-01T0230Z", "auto-2026-12-03T0230Z", "manual", "auto-2026-12-02T0230Z"]
    assert stack.to_prune(names, keep=2) == ["auto-2026-12-01T0230Z"]
    assert stack.to_prune(names, keep=5) == []


def test_schedule_runs_backups_keeps_the_newest_and_reports_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stack, "HEARTBEAT", tmp_path / "heartbeat.json")
    now = [dt.datetime(2026, 12, 6, 2, 0, tzinfo=dt.UTC)]
    made: list[str] = []

    def make(dest: Path) -> None:
        if len(made) == 2:
            raise OSError("disk full")
        dest.mkdir()
        made.append(dest.name)

    (tmp_path / "b" / "manual").mkdir(parents=True)
    stack.run_schedule(
        tmp_path / "b",
        stack.parse_time_of_day("02:30"),
        keep=1,
        make_backup=make,
        clock=lambda: now[0],
        sleep=lambda s: now.__setitem__(0, now[0] + dt.timedelta(seconds=s)),
        log=lambda _: None,
        runs=3,
    )
    assert made == ["auto-2026-12-06T0230Z", "auto-2026-12-07T0230Z"]
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["auto-2026-12-07T0230Z", "manual"]
    state = json.loads((tmp_path / "heartbeat.json").read_text())
    assert "disk full" in state["last_error"]
    assert "failed" in (stack.schedule_health() or "")


def test_check_schedule_command_fails_without_a_running_schedule(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "itagger_lib.cli", "backup", "--check-schedule"],
        capture_output=True,
        text=True,
        env={"ITAGGER_BACKUP_HEARTBEAT": str(tmp_path / "none.json"), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 1 and "not running" in done.stdout
