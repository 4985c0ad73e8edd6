"""The compose stack as an admin installs it, for tests/stack/test_stack.py.

:func:`checkout` copies this working tree (tracked and untracked, not ignored files) into a
fresh folder, as ``git clone`` would give an admin, and then plants what an admin's checkout
holds after following the docs and what must never reach an image: a ``.venv``, a ``.git``
folder and a ``backups`` folder each holding a marker string. :class:`Stack` then runs the
commands of ``docs/deploy.md`` in that folder: ``./new-env.sh > .env``, the certificate,
``docker compose build``, ``docker compose up -d --wait`` and so on. Every command's output
goes to ``commands.log`` in the stack's folder, printed when a test fails.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.stack._engine import Engine

REPO = Path(__file__).resolve().parents[2]
PROXY_UID, APP_UID = 101, 1000


def server_name(user: str) -> str:
    """The name DockerSpawner gives a user's container and home volume (``tagger-a`` -> ``tagger-2da``)."""
    from dockerspawner import DockerSpawner

    return str(DockerSpawner._escape(user))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def checkout(dest: Path, source: Path = REPO) -> tuple[Path, str]:
    """A copy of ``source``'s working tree in ``dest`` with planted secrets; the marker string."""
    if (source / ".git").exists():
        listed = subprocess.run(
            ["git", "-C", str(source), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            check=True,
        ).stdout.split(b"\0")
        names = [raw.decode() for raw in listed if raw]
    else:  # an exported release (git archive)
        names = [str(p.relative_to(source)) for p in source.rglob("*") if p.is_file()]
    for rel in names:
        src = source / rel
        if not src.is_file():  # deleted in the working tree
            continue
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, out)
    marker = "itagger-planted-secret-" + secrets.token_hex(16)
    for planted in (
        ".venv/lib/secret.txt",
        ".git/config",
        "deploy/backups/old/db.sqlite",
        ".test-artifacts/x",
    ):
        path = dest / planted
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"token = {marker}\n")
    return dest, marker


def set_env(env_file: Path, **values: str) -> None:
    """Set ``KEY=value`` lines in a compose ``.env`` file (replacing existing ones), like an editor."""
    lines = env_file.read_text().splitlines()
    for key, value in values.items():
        pattern = re.compile(rf"^{re.escape(key)}=.*$")
        hit = [i for i, line in enumerate(lines) if pattern.match(line)]
        if hit:
            lines[hit[0]] = f"{key}={value}"
        else:
            lines.append(f"{key}={value}")
    env_file.write_text("\n".join(lines) + "\n")


def read_env(env_file: Path) -> dict[str, str]:
    out = {}
    for line in env_file.read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            out[key] = value
    return out


@dataclass
class Stack:
    root: Path  # the admin's checkout
    engine: Engine
    log: Path
    ports: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def deploy(self) -> Path:
        return self.root / "deploy"

    @property
    def env_file(self) -> Path:
        return self.deploy / ".env"

    @property
    def env(self) -> dict[str, str]:
        return read_env(self.env_file)

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.ports['https']}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"

    @property
    def ca(self) -> str:
        return str(self.deploy / "certs" / "fullchain.pem")

    def sh(self, command: str, *, timeout: float = 900, check: bool = True, cwd: Path | None = None) -> str:
        """Run a documented shell command in ``deploy/`` against the test's engine; its stdout."""
        env = {
            **self.engine.env(),
            "ITAGGER_DOCKER_SOCKET": str(self.engine.socket or "/var/run/docker.sock"),
        }
        t0 = time.perf_counter()
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=cwd or self.deploy,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        with open(self.log, "a") as out:
            out.write(f"\n$ {command}   # rc {done.returncode}, {time.perf_counter() - t0:.1f} s\n")
            out.write(done.stdout[-20000:])
            out.write(done.stderr[-20000:])
        if check and done.returncode != 0:
            raise RuntimeError(
                f"`{command}` failed with {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done.stdout

    def compose(self, args: str, **kwargs) -> str:  # type: ignore[no-untyped-def]
        return self.sh(f"docker compose {args}", **kwargs)

    def psql(self, sql: str) -> list[list[str]]:
        """Rows of ``sql`` run as the workbench database's owner (psql in the hub container)."""
        out = self.compose(f"exec -T hub psql -X -At -F '\t' -v ON_ERROR_STOP=1 -c {shlex.quote(sql)}")
        return [line.split("\t") for line in out.splitlines() if line]

    def user_exec(self, user: str, command: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``command`` in ``user``'s server container, with the environment the hub gave it."""
        container = f"jupyter-{server_name(user)}"
        done = self.engine.docker("exec", container, "bash", "-lc", command, check=False, timeout=600)
        with open(self.log, "a") as out:
            out.write(f"\n$ docker exec {container} {command}   # rc {done.returncode}\n")
            out.write(done.stdout[-20000:] + done.stderr[-20000:])
        if check and done.returncode != 0:
            raise RuntimeError(
                f"in jupyter-{user}: `{command}` failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done

    def container_env(self, name: str) -> dict[str, str]:
        raw = self.engine.docker("inspect", "--format", "{{json .Config.Env}}", name).stdout
        return dict(item.split("=", 1) for item in json.loads(raw))

    def logs(self) -> str:
        parts = [self.log.read_text()[-15000:] if self.log.exists() else ""]
        done = subprocess.run(
            ["docker", "compose", "logs", "--no-color", "--tail", "60"],
            cwd=self.deploy,
            env=self.engine.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        parts.append(done.stdout[-20000:])
        return "\n".join(parts)


def set_up(engine: Engine, root: Path, base_image: str, *, source: Path = REPO) -> tuple[Stack, str]:
    """The docs' "Start" steps up to the first build: checkout, ``.env``, certificate, backups folder."""
    checkout(root, source)
    marker = (root / ".venv/lib/secret.txt").read_text().split()[-1]
    stack = Stack(root=root, engine=engine, log=root.parent / "commands.log")
    stack.ports = {"http": free_port(), "https": free_port()}
    # docs/deploy.md, "Start"
    stack.sh("./new-env.sh > .env && chmod 600 .env")
    set_env(
        stack.env_file,
        ITAGGER_SERVER_NAME="tagger.test",
        ITAGGER_BIND_ADDRESS="127.0.0.1",  # nothing but loopback in tests
        ITAGGER_HTTP_PORT=str(stack.ports["http"]),
        ITAGGER_HTTPS_PORT=str(stack.ports["https"]),
        ITAGGER_BASE_IMAGE=base_image,
        ITAGGER_USER_MEM_LIMIT="1536M",
        ITAGGER_USER_CPU_LIMIT="1.5",
        # lets the browser test run a notebook's cells through JupyterLab's command registry
        ITAGGER_SINGLEUSER_ARGS="--LabApp.expose_app_in_browser=True",
    )
    stack.sh(
        "install -d -m 755 certs && openssl req -x509 -newkey rsa:2048 -sha256 -days 30 -nodes "
        '-subj "/CN=tagger.test" -addext "subjectAltName=DNS:tagger.test,DNS:localhost,IP:127.0.0.1" '
        "-keyout certs/privkey.pem -out certs/fullchain.pem 2>/dev/null "
        f"&& chown {PROXY_UID}:{PROXY_UID} certs/privkey.pem certs/fullchain.pem "
        "&& chmod 600 certs/privkey.pem"
    )
    stack.sh(f"install -d -o {APP_UID} -g {APP_UID} -m 700 backups")
    os.chmod(stack.env_file, 0o600)
    return stack, marker


def _git(*args: str, repo: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)


def previous_release(repo: Path = REPO) -> tuple[str, str]:
    """(commit, version) of the release before this working tree's.

    The state just before the newest change of ``VERSION`` (or ``HEAD`` while a new VERSION
    is not committed yet). Raises ``LookupError`` saying why when there is none, e.g. in a
    shallow clone.
    """
    current = (repo / "VERSION").read_text().strip()
    if _git("diff", "--quiet", "HEAD", "--", "VERSION", repo=repo).returncode != 0:
        commit = "HEAD"
    else:
        bump = _git("rev-list", "-1", "HEAD", "--", "VERSION", repo=repo).stdout.strip()
        if not bump:
            raise LookupError("git history not found: clone the repository with its history")
        commit = f"{bump}^"
    resolved = _git("rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}", repo=repo).stdout.strip()
    if not resolved:
        raise LookupError(f"no commit before the release {current} (a shallow clone? git fetch --unshallow)")
    version = _git("show", f"{resolved}:VERSION", repo=repo).stdout.strip()
    if _git("cat-file", "-e", f"{resolved}:deploy/images/Dockerfile", repo=repo).returncode != 0:
        raise LookupError(f"release {version} ({resolved[:10]}) has no buildable stack")
    return resolved, version


def export_commit(commit: str, dest: Path, repo: Path = REPO) -> Path:
    """The files of ``commit`` in ``dest`` (what ``git checkout`` of that release gives)."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(repo), "archive", commit], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


def switch_release(checkout_root: Path, release_tree: Path) -> None:
    """Replace the release files of an admin's checkout, keeping what the admin made.

    What ``git checkout <tag>`` does to a checkout: tracked files change, the untracked and
    ignored ones (``deploy/.env``, ``deploy/certs/*.pem``, ``deploy/backups``) stay.
    """
    keep = {
        Path("deploy/.env"),
        Path("deploy/backups"),
        Path("deploy/certs/privkey.pem"),
        Path("deploy/certs/fullchain.pem"),
    }
    for path in sorted(checkout_root.rglob("*"), reverse=True):
        rel = path.relative_to(checkout_root)
        if any(rel == k or k in rel.parents for k in keep) or rel.parts[0] in (".git", ".venv"):
            continue
        if path.is_file() or path.is_symlink():
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    for src in release_tree.rglob("*"):
        rel = src.relative_to(release_tree)
        if src.is_file() and rel not in keep:
            out = checkout_root / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, out)
