"""Scale-out as a lab runs it: a `dask scheduler` and `dask worker` processes of their own.

Test class ``dask``. Every process is a real OS process on 127.0.0.1, started with the
commands of docs/scale.md: the scheduler, worker ``a`` whose ``ITAGGER_STORE`` is the
workspace's store, worker ``b`` whose store is a copy at another path, and ``itagger
science --scheduler`` as the client. Workers get no database settings: tasks carry
store-relative names, never the client's paths. Each case ends as docs/scale.md says: a
worker killed mid-run (its tasks retried, the loss noted on the run, values bit-identical
to a serial run), all workers killed (results written on the timer while the run waits,
then ``interrupted`` after ``--cluster-timeout``; a rerun resumes), Ctrl-C, a dead
scheduler, a worker without the store and a worker whose OpenCV differs.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest
import sqlalchemy as sa

from itagger_lib.samples import write_samples
from itagger_lib.science.parallel import analyse_file
from itagger_lib.store import ImageStore

distributed = pytest.importorskip(
    "distributed", reason="the dask class needs distributed: pip install -e '.[dask]'"
)

pytestmark = [pytest.mark.dask, pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
N_IMAGES = 12
DASK = Path(sys.executable).with_name("dask")
DASK_COMMAND = [str(DASK)] if DASK.exists() else [sys.executable, "-m", "dask"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ITAGGER_", "DASK_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return {**env, **extra}


class Cluster:
    """The scheduler and named workers, each in a process group of its own (nanny and worker)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.address = f"tcp://127.0.0.1:{_free_port()}"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._start(
            "scheduler",
            ["scheduler", "--host", "127.0.0.1", "--port", self.address.rsplit(":", 1)[1], "--no-dashboard"],
        )
        self.client = self._client()

    def _start(self, name: str, args: list[str], **env: str) -> None:
        log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 - the process writes it
        self.processes[name] = subprocess.Popen(
            [*DASK_COMMAND, *args], env=_clean_env(**env), stdout=log, stderr=log, start_new_session=True
        )

    def _client(self) -> distributed.Client:
        deadline = time.monotonic() + 60
        while True:
            try:
                return distributed.Client(self.address, timeout=5, set_as_default=False)
            except OSError:
                if time.monotonic() > deadline:
                    raise

    def start_workers(self, stores: dict[str, Path], *extra: str) -> None:
        """``dask worker ADDRESS --name NAME --nthreads 1`` with ``ITAGGER_STORE`` per worker
        (worker ``b`` without a nanny: one process, as some labs run them)."""
        for name, store in stores.items():
            args = ["worker", self.address, "--name", name, "--nthreads", "1", "--no-dashboard", *extra]
            args += ["--no-nanny"] if name == "b" else []
            self._start(name, args, ITAGGER_STORE=str(store))
        deadline = time.monotonic() + 90
        while set(stores) - set(self.workers()):
            assert time.monotonic() < deadline, f"workers {sorted(stores)} did not start: {self.logs()}"
            time.sleep(0.1)

    def workers(self) -> dict[str, str]:
        """Connected workers, name → address."""
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        return {str(w["name"]): address for address, w in info.items()}

    def kill(self, *names: str) -> None:
        """SIGKILL whole workers (nanny and worker process), as a machine that goes away."""
        for name in names:
            process = self.processes.pop(name, None)
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        deadline = time.monotonic() + 30
        while set(names) & set(self.workers()):
            assert time.monotonic() < deadline
            time.sleep(0.05)

    def kill_workers(self) -> None:
        self.kill(*[name for name in self.processes if name != "scheduler"])

    def task_states(self) -> list[str]:
        """States of the science tasks on the scheduler (``processing``, ``memory``, ...)."""

        def states(dask_scheduler):  # type: ignore[no-untyped-def]
            return [
                ts.state for key, ts in dask_scheduler.tasks.items() if str(key).startswith("analyse_batch")
            ]

        return list(self.client.run_on_scheduler(states))

    def processing(self) -> dict[str, int]:
        """Science tasks assigned to each worker, by name."""
        names = {address: name for name, address in self.workers().items()}
        return {
            names.get(a, a): len([k for k in keys if str(k).startswith("analyse_batch")])
            for a, keys in self.client.processing().items()
        }

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.folder.glob("*.log")
        )

    def close(self) -> None:
        self.client.close()
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


class Lab:
    """A Postgres workspace (database + store), the cluster, and ``itagger`` as a client."""

    def __init__(self, folder: Path, url: str, cluster: Cluster) -> None:
        self.folder = folder
        self.url = url
        self.store = folder / "store"
        self.elsewhere = folder / "mnt" / "nfs" / "itagger-store"  # worker b's mount of the same store
        self.cluster = cluster
        self.engine = sa.create_engine(url)

    def env(self, **extra: str) -> dict[str, str]:
        return _clean_env(
            ITAGGER_DATABASE_URL=self.url,
            ITAGGER_STORE=str(self.store),
            ITAGGER_HOME=str(self.folder / "home"),
            ITAGGER_USER="lab",
            **extra,
        )

    def itagger(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "itagger_lib.cli", *args]
        return subprocess.run(
            command, env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )

    def science(self, *args: str) -> subprocess.Popen[str]:
        command = [
            sys.executable,
            "-m",
            "itagger_lib.cli",
            "science",
            "--scheduler",
            self.cluster.address,
            *args,
        ]
        return subprocess.Popen(
            command, env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def runs(self) -> list[sa.Row]:
        with self.engine.connect() as connection:
            columns = "id, status, n_total, n_done, n_failed, error, details"
            query = sa.text(f"select {columns} from runs where kind = 'science' order by id")
            return list(connection.execute(query))

    def last_run(self) -> sa.Row:
        return self.runs()[-1]

    def wait_for_run(self, before: int, process: subprocess.Popen[str]) -> sa.Row:
        deadline = time.monotonic() + 60
        while len(self.runs()) <= before:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        return self.last_run()

    def values(self, run_id: int) -> dict[tuple[int, str], float]:
        with self.engine.connect() as connection:
            phash = connection.execute(
                sa.text("select params_hash from runs where id = :r"), {"r": run_id}
            ).scalar_one()
            rows = connection.execute(
                sa.text("select image_id, key, value from metrics where params_hash = :h"), {"h": phash}
            )
            return {(r.image_id, r.key): (math.nan if r.value is None else r.value) for r in rows}

    def serial(self, params: dict[str, object] | None = None) -> dict[tuple[int, str], float]:
        """Every image's values computed here, one after the other, as a worker computes them
        (OpenCV on one thread: with more, one reduction rounds its last bit differently)."""
        with self.engine.connect() as connection:
            images = connection.execute(sa.text("select id, sha256, ext, width, height from images")).all()
        store = ImageStore(self.store)
        values = {}
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            for image in images:
                path = str(store.path_for(image.sha256, image.ext))
                for key, value in analyse_file(path, params, image.width, image.height).items():
                    values[image.id, key] = value
        finally:
            cv2.setNumThreads(threads)
        return values


def _identical(stored: dict[tuple[int, str], float], serial: dict[tuple[int, str], float]) -> None:
    assert stored.keys() == serial.keys()
    differing = [
        k for k, v in serial.items() if not (stored[k] == v or (math.isnan(v) and math.isnan(stored[k])))
    ]
    assert not differing, f"{len(differing)} values differ from the serial run, e.g. {differing[:3]}"


@pytest.fixture(scope="module")
def lab(pg_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    folder = tmp_path_factory.mktemp("lab")
    name = f"itagger_dask_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)
    cluster = Cluster(folder)
    lab = Lab(folder, url, cluster)
    try:
        write_samples(folder / "photos", N_IMAGES, width=1280, height=960)
        ingest = lab.itagger("ingest", str(folder / "photos"))
        assert ingest.returncode == 0, ingest.stderr
        lab.elsewhere.parent.mkdir(parents=True)
        shutil.copytree(lab.store, lab.elsewhere)  # the same files, mounted at another path
        cluster.start_workers({"a": lab.store, "b": lab.elsewhere})
        yield lab
    finally:
        print(cluster.logs()[-6000:])
        cluster.close()
        lab.engine.dispose()
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_a_worker_killed_mid_run_is_retried_and_noted_values_bit_identical(lab: Lab) -> None:
    cluster = lab.cluster
    if set(cluster.workers()) != {"a", "b"}:
        cluster.kill_workers()
        cluster.start_workers({"a": lab.store, "b": lab.elsewhere})
    before = len(lab.runs())
    process = lab.science()
    deadline = time.monotonic() + 60
    while not cluster.processing().get("a"):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.01)
    cluster.kill("a")  # mid-task: its tasks go to b, whose store is mounted elsewhere
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    run = lab.last_run()
    assert len(lab.runs()) == before + 1
    assert (run.status, run.n_done, run.n_failed) == ("succeeded", N_IMAGES, 0)
    notes = [note["note"] for note in run.details["notes"]]
    assert any("left the cluster (lost" in note and "task(s) of this run" in note for note in notes), notes
    assert "NOTE" in stdout and "left the cluster" in stdout
    _identical(lab.values(run.id), lab.serial())
    cluster.start_workers({"a": lab.store})


def test_all_workers_lost_results_written_on_the_timer_then_interrupted(lab: Lab) -> None:
    cluster = lab.cluster
    params = ("-p", "working_long_side=800")
    process = lab.science(*params, "--cluster-timeout", "8")
    # all its tasks are submitted at once; the client releases each as it takes the results
    deadline, peak = time.monotonic() + 60, 0
    while not 0 < (left := len(cluster.task_states())) < peak:
        peak = max(peak, left)
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.005)
    cluster.kill_workers()
    lost = time.monotonic()
    written = None
    while process.poll() is None:  # the run waits for workers, and writes what it has meanwhile
        run = lab.last_run()
        if run.status == "running" and run.n_done:
            written = run.n_done
        time.sleep(0.1)
    waited = time.monotonic() - lost
    stderr = process.communicate()[1]
    assert written, "finished results were not written while the run waited for workers"
    assert process.returncode == 1
    line = _one_line(stderr)
    assert "no Dask worker has been connected" in line and "for 8 s" in line and "--cluster-timeout" in line
    assert 8 <= waited < 30
    run = lab.last_run()
    assert run.status == "interrupted" and "no Dask worker" in run.error
    assert 0 < run.n_done < N_IMAGES and run.n_done >= written
    # the rerun resumes on fresh workers and completes the same values as a serial run
    cluster.start_workers({"a": lab.store, "b": lab.elsewhere})
    rerun = lab.itagger("science", "--scheduler", cluster.address, *params)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{N_IMAGES - run.n_done} computed, {run.n_done} already up to date" in rerun.stdout
    _identical(lab.values(lab.last_run().id), lab.serial({"working_long_side": 800}))


def test_ctrl_c_while_waiting_for_workers_is_recorded_as_interrupted(lab: Lab) -> None:
    lab.cluster.kill_workers()
    before = len(lab.runs())
    process = lab.science("-p", "working_long_side=700")
    run = lab.wait_for_run(before, process)
    assert run.status == "running"
    time.sleep(1.0)  # tasks submitted, nothing to run them
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert _one_line(stderr) == "itagger science: interrupted"
    run = lab.last_run()
    assert run.status == "interrupted"
    assert run.error.startswith("interrupted (Ctrl-C"), run.error


def test_a_dead_scheduler_gives_one_line_and_leaves_no_running_row(lab: Lab) -> None:
    before = lab.runs()
    dead = f"tcp://127.0.0.1:{_free_port()}"
    started = time.monotonic()
    done = lab.itagger(
        "science", "--scheduler", dead, "--cluster-timeout", "2", "-p", "working_long_side=600"
    )
    assert time.monotonic() - started < 30
    assert done.returncode == 1
    line = _one_line(done.stderr)
    assert line.startswith(f"itagger science: error: cannot reach the Dask scheduler at {dead}"), line
    assert lab.runs() == before


def test_a_worker_without_the_store_stops_the_run_with_one_message(lab: Lab) -> None:
    lab.cluster.kill_workers()
    empty = lab.folder / "not-mounted"
    empty.mkdir()
    lab.cluster.start_workers({"c": empty})
    done = lab.itagger("science", "--scheduler", lab.cluster.address, "-p", "working_long_side=600")
    assert done.returncode == 1
    line = _one_line(done.stderr)
    assert f"cannot read the image store at {empty} (its ITAGGER_STORE)" in line, line
    assert f"it looked for {empty}/" in line
    run = lab.last_run()
    assert run.status == "failed" and f"image store at {empty}" in run.error and run.n_failed == 0
    with lab.engine.connect() as connection:
        failures = connection.execute(
            sa.text("select count(*) from run_failures where run_id = :r"), {"r": run.id}
        )
        assert failures.scalar_one() == 0  # one message, not one UnreadableFileError per image
    lab.cluster.kill("c")


def test_a_worker_with_another_opencv_is_refused(lab: Lab) -> None:
    lab.cluster.kill_workers()
    preload = lab.folder / "other_opencv.py"
    preload.write_text('import cv2\ncv2.__version__ = "4.0.0"\n')  # as a worker with another OpenCV build
    lab.cluster.start_workers({"d": lab.store}, "--preload", str(preload))
    done = lab.itagger("science", "--scheduler", lab.cluster.address, "-p", "working_long_side=600")
    assert done.returncode == 1
    line = _one_line(done.stderr)
    assert "has OpenCV 4.0.0 (the client has" in line and "refused" in line, line
    assert lab.last_run().status == "failed"
    lab.cluster.kill("d")


def test_a_sqlite_workspace_on_the_same_cluster(lab: Lab, tmp_path: Path) -> None:
    lab.cluster.start_workers({"a": lab.store, "b": lab.elsewhere})
    env = {**lab.env(), "ITAGGER_DATABASE_URL": f"sqlite:///{tmp_path / 'lab.db'}"}
    for args in (["ingest", str(lab.folder / "photos")], ["science", "--scheduler", lab.cluster.address]):
        done = subprocess.run(
            [sys.executable, "-m", "itagger_lib.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    assert f"{N_IMAGES} computed" in done.stdout
    engine = sa.create_engine(env["ITAGGER_DATABASE_URL"])
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("select i.sha256, m.key, m.value from metrics m join images i on i.id = m.image_id")
        )
        sqlite = {(r.sha256, r.key): (math.nan if r.value is None else r.value) for r in rows}
    with lab.engine.connect() as connection:
        ids = dict(connection.execute(sa.text("select id, sha256 from images")).all())
    _identical(sqlite, {(ids[i], key): v for (i, key), v in lab.serial().items()})
    engine.dispose()
