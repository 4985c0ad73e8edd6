"""Shared fixtures: a fresh database on SQLite and PostgreSQL, a workspace, sample images.

PostgreSQL comes from, in order: ``ITAGGER_TEST_DATABASE_URL``; a server at
``postgresql+psycopg://postgres@127.0.0.1:5432/test``; a throwaway cluster started with
Debian's ``initdb``/``pg_ctl`` (as the ``postgres`` user when run as root). Only if none
works are the Postgres tests skipped, with a message saying how to enable them.

Test classes (markers): postgres, notebooks, browser, hub, stack, dask (a real ``dask
scheduler`` and ``dask worker`` processes on loopback). With ``ITAGGER_REQUIRE_ALL=1``
(set by ``.ci/run``) a skipped test of any class fails the session.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

CLASSES = ("postgres", "notebooks", "browser", "hub", "stack", "dask")
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
HOW_TO_ENABLE_PG = (
    "PostgreSQL tests skipped: no server found. Set ITAGGER_TEST_DATABASE_URL="
    "postgresql+psycopg://user@host:5432/db (a role that may CREATE DATABASE), run a server on "
    "127.0.0.1:5432 with trust auth, or install Debian's postgresql package so the tests can "
    "start a throwaway cluster."
)
_skipped_classes: dict[str, str] = {}


def _can_connect(url: str) -> bool:
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(sa.text("select 1"))
        engine.dispose()
        return True
    except Exception:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _find_pg_bin(name: str) -> str | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    if candidates:
        return str(candidates[0])
    return shutil.which(name)


def _throwaway_cluster() -> str | None:
    initdb, pg_ctl = _find_pg_bin("initdb"), _find_pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        return None
    root = Path(tempfile.mkdtemp(prefix="itagger-pg-"))
    data = root / "data"
    port = _free_port()
    prefix: list[str] = []
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if not runuser:
            return None
        shutil.chown(root, "postgres")
        prefix = [runuser, "-u", "postgres", "--"]
    try:
        subprocess.run(
            [*prefix, initdb, "-D", str(data), "-A", "trust", "-U", "postgres"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            [
                *prefix,
                pg_ctl,
                "-D",
                str(data),
                "-l",
                str(root / "log"),
                "-w",
                "-o",
                f"-p {port} -k {root} -c listen_addresses=127.0.0.1",
                "start",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    except (subprocess.SubprocessError, OSError):
        return None
    atexit.register(
        lambda: subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
    )
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    return url if _can_connect(url) else None


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """A PostgreSQL URL whose role may create databases (or skip, saying how to enable)."""
    url = os.environ.get("ITAGGER_TEST_DATABASE_URL")
    if url:
        if not _can_connect(url):
            pytest.fail(f"ITAGGER_TEST_DATABASE_URL is set but no connection is possible: {url}")
        return url
    if _can_connect(DEFAULT_PG):
        return DEFAULT_PG
    url = _throwaway_cluster()
    if url:
        return url
    pytest.skip(HOW_TO_ENABLE_PG)


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"itagger_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database URL: the test runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'itagger.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def workspace(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A fresh workspace (database + store) on SQLite and on PostgreSQL."""
    from itagger_lib import Workspace

    monkeypatch.setenv("ITAGGER_USER", "tester")
    ws = Workspace(database_url=database_url, store=tmp_path / "store", home=tmp_path / "home")
    yield ws
    ws.close()


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve generated sample images (JPEG, PNG, WebP, TIFF, BMP, an EXIF-rotated JPEG)."""
    from itagger_lib.samples import write_samples

    folder = tmp_path_factory.mktemp("samples")
    write_samples(folder, n=12)
    return folder


_ran: dict[str, int] = {name: 0 for name in CLASSES}
_skipped: dict[str, list[str]] = {name: [] for name in CLASSES}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count, per test class, the tests that ran and those skipped (with their reasons)."""
    classes = [name for name in CLASSES if name in report.keywords]
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        for name in classes:
            _skipped[name].append(str(reason))
            _skipped_classes.setdefault(name, str(reason))
    elif report.when == "call":
        for name in classes:
            _ran[name] += 1


def class_summary() -> list[str]:
    """One line per test class: how many of its tests ran and were skipped, and why."""
    lines = []
    for name in CLASSES:
        ran, skipped = _ran[name], _skipped[name]
        if not ran and not skipped:
            continue
        line = f"test class {name}: {ran} ran, {len(skipped)} skipped"
        if skipped:
            reasons = sorted(set(skipped))
            line += (
                " ("
                + "; ".join(reasons[:3])
                + (f"; and {len(reasons) - 3} more" if len(reasons) > 3 else "")
                + ")"
            )
        lines.append(line)
    return lines


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # type: ignore[no-untyped-def]
    for line in class_summary():
        terminalreporter.write_line(line, yellow="skipped" in line and not line.endswith(" 0 skipped"))
    if _skipped_classes and os.environ.get("ITAGGER_REQUIRE_ALL") == "1":
        terminalreporter.write_line(
            "ITAGGER_REQUIRE_ALL=1: tests of a class were skipped, so the run fails", red=True
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("ITAGGER_REQUIRE_ALL") == "1" and _skipped_classes:
        session.exitstatus = 1
