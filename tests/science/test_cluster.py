"""The cluster rules without a cluster: version comparison, a worker's store, notes, the timer.

The same functions run inside Dask workers in tests/science/test_dask_cluster.py (class
``dask``); here they run in this process, against real folders and databases.
"""

from __future__ import annotations

import concurrent.futures as cf
from pathlib import Path

import pytest
import sqlalchemy as sa

from itagger_lib.config import DEFAULT_CLUSTER_TIMEOUT, cluster_timeout, store_path
from itagger_lib.db.models import Run
from itagger_lib.errors import ClusterError, ConfigError
from itagger_lib.runs import note_run, start_run
from itagger_lib.samples import write_samples
from itagger_lib.science import cluster
from itagger_lib.science.dask_map import analyse_batch
from itagger_lib.science.parallel import analyse_file, map_images
from itagger_lib.store import ImageStore, sha256_file


def test_mismatch_names_the_first_package_that_differs() -> None:
    mine = cluster.environment()
    assert set(mine) == {"itagger_lib", "Python", "numpy", "OpenCV", "SciPy", "Pillow"}
    assert cluster.mismatch(mine, dict(mine)) is None
    assert (
        cluster.mismatch(mine, {**mine, "SciPy": "1.0.0"}) == f"SciPy 1.0.0 (the client has {mine['SciPy']})"
    )
    assert cluster.mismatch(mine, {k: v for k, v in mine.items() if k != "numpy"}).startswith("numpy missing")


def test_a_worker_with_other_versions_refuses_the_task() -> None:
    expected = {**cluster.environment(), "numpy": "0.1"}
    with pytest.raises(ClusterError, match=r"has numpy .* \(the client has 0\.1\).*refused"):
        analyse_batch([], {}, expected)


def test_store_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert store_path({"ITAGGER_STORE": str(tmp_path / "s")}) == tmp_path / "s"
    assert store_path({"ITAGGER_HOME": str(tmp_path)}) == tmp_path / "store"
    assert cluster_timeout({}) == DEFAULT_CLUSTER_TIMEOUT
    assert cluster_timeout({"ITAGGER_CLUSTER_TIMEOUT": "2.5"}) == 2.5
    for bad in ("0", "-1", "soon", "nan"):
        with pytest.raises(ConfigError, match="ITAGGER_CLUSTER_TIMEOUT"):
            cluster_timeout({"ITAGGER_CLUSTER_TIMEOUT": bad})


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Path, list[tuple[str, int, int]]]:
    """A store of three images and their (store-relative name, width, height)."""
    store = ImageStore(tmp_path / "store")
    files = []
    for path in write_samples(tmp_path / "photos", 3, width=320, height=240):
        sha = sha256_file(path)
        store.put(path, sha, path.suffix.lstrip("."))
        files.append((store.relpath(sha, path.suffix.lstrip(".")), 320, 240))
    return store.root, files


def test_a_task_reads_store_relative_names_from_the_workers_own_store(
    stored: tuple[Path, list[tuple[str, int, int]]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root, files = stored
    moved = tmp_path / "mounted" / "elsewhere"
    moved.parent.mkdir()
    root.rename(moved)
    monkeypatch.setenv("ITAGGER_STORE", str(moved))
    outcomes = analyse_batch(files, {}, cluster.environment(), [name for name, *_ in files])
    assert outcomes == [(analyse_file(str(moved / name), {}, w, h), None) for name, w, h in files]


def test_a_worker_without_the_store_fails_the_task_once_naming_the_path(
    stored: tuple[Path, list[tuple[str, int, int]]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _, files = stored
    samples = [name for name, *_ in files]
    for root, why in (
        (tmp_path / "absent", "there is no such folder"),
        (tmp_path / "empty", f"none of this run's images is there (it looked for {tmp_path / 'empty'}/"),
    ):
        (tmp_path / "empty").mkdir(exist_ok=True)
        monkeypatch.setenv("ITAGGER_STORE", str(root))
        with pytest.raises(ClusterError) as caught:
            analyse_batch(files, {}, None, samples)
        assert f"cannot read the image store at {root} (its ITAGGER_STORE): {why}" in str(caught.value)
        assert cluster.worker_report(samples)["problem"].startswith(why.split(" (")[0])


def test_one_missing_file_in_a_readable_store_is_that_images_failure(
    stored: tuple[Path, list[tuple[str, int, int]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, files = stored
    monkeypatch.setenv("ITAGGER_STORE", str(root))
    (root / files[0][0]).unlink()
    outcomes = analyse_batch(files, {}, None, [name for name, *_ in files])
    assert outcomes[0][0] is None and outcomes[0][1].startswith("UnreadableFileError")
    assert all(values and error is None for values, error in outcomes[1:])


def test_notes_are_appended_to_the_run(workspace) -> None:  # type: ignore[no-untyped-def]
    run_id = start_run(workspace.engine, "science", {}, "tester")
    with workspace.engine.begin() as connection:
        note_run(connection, run_id, ["worker a left"])
        note_run(connection, run_id, [])
        note_run(connection, run_id, ["worker b left"])
    with workspace.engine.connect() as connection:
        details = connection.execute(sa.select(Run.details).where(Run.id == run_id)).scalar_one()
    assert [n["note"] for n in details["notes"]] == ["worker a left", "worker b left"]
    assert details["owner"]["pid"]  # what start_run recorded is kept


def test_a_pool_gives_the_caller_a_tick_while_it_waits(
    stored: tuple[Path, list[tuple[str, int, int]]],
) -> None:
    root, files = stored
    ticks = []
    items = [(i, str(root / name), w, h) for i, (name, w, h) in enumerate(files)]
    with cf.ThreadPoolExecutor(1) as pool:
        outcomes = list(map_images(items, None, pool, tick=lambda: ticks.append(1)))
    assert len(outcomes) == 3 and ticks


def test_dasks_own_version_check_becomes_a_note() -> None:
    versions = pytest.importorskip("distributed.versions")
    mine = versions.get_versions()
    other = {**mine, "packages": {**mine["packages"], "cloudpickle": "0.1", "tornado": "1.0"}}
    assert cluster.dask_mismatch({"client": mine, "scheduler": mine, "workers": {"tcp://w:1": mine}}) is None
    note = cluster.dask_mismatch({"client": mine, "scheduler": mine, "workers": {"tcp://w:1": other}})
    assert note.startswith("Dask's own version check") and "of cloudpickle, tornado;" in note


def test_a_cluster_timeout_that_is_no_time_is_refused_before_anything_runs(workspace) -> None:  # type: ignore[no-untyped-def]
    from itagger_lib.errors import ArgumentError

    with pytest.raises(ArgumentError, match="cluster_timeout must be a positive number of seconds, got 0"):
        workspace.run_science(scheduler="tcp://127.0.0.1:1", cluster_timeout=0)
    assert workspace.runs("science").empty
