"""The group deployment run natively on loopback, for tests/deploy/test_hub_native.py.

Postgres (a fresh database owned by a fresh login role, like the compose stack's
``POSTGRES_USER``), JupyterHub with the real ``deploy/jupyterhub_config.py`` and
``ITAGGER_SPAWNER=simple``, configurable-http-proxy from ``deploy/node_modules`` and nginx with
``deploy/nginx/itagger.conf`` and a self-signed certificate. Every process logs to a file under
the stack's folder; :meth:`HubStack.log_tails` prints their ends when a test fails.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

from itagger_lib.ops import hubconfig
from tests.fakes.codebooks import people_codebook

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CHP = DEPLOY / "node_modules" / ".bin" / "configurable-http-proxy"
CHROMIUM = "/usr/bin/chromium"
CODEBOOK = people_codebook("hubtest")
#: single-user server options for the test: the lab app exposed for driving, no network calls
SINGLEUSER_ARGS = (
    "--LabApp.expose_app_in_browser=True --LabApp.news_url= "
    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"
)


def missing_tools() -> list[str]:
    """What the native stack needs and this machine lacks, each with how to get it."""
    out = []
    if not Path(NGINX).exists():
        out.append("nginx (apt-get install -y nginx-light)")
    if not Path(CHROMIUM).exists():
        out.append(f"{CHROMIUM} (apt-get install -y chromium)")
    if not CHP.exists():
        out.append("configurable-http-proxy (run: cd deploy && npm install)")
    if not shutil.which("openssl"):
        out.append("openssl (apt-get install -y openssl)")
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Proc:
    """A background process whose output goes to ``log``."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, n: int = 60) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()[-n:]
        except OSError:
            return f"(no log at {self.log})"
        return "\n".join(lines)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


def start(name: str, cmd: list[str], folder: Path, env: dict[str, str] | None = None) -> Proc:
    log = folder / f"{name}.log"
    with open(log, "wb") as out:
        popen = subprocess.Popen(cmd, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT)
    return Proc(name, popen, log)


def self_signed_cert(folder: Path, days: int = 30) -> Path:
    """``fullchain.pem`` / ``privkey.pem`` for localhost and 127.0.0.1 in ``folder``; the cert path."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            str(days),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(folder / "privkey.pem"),
            "-out",
            str(folder / "fullchain.pem"),
        ],
        check=True,
        capture_output=True,
    )
    return folder / "fullchain.pem"


def render_nginx(folder: Path, certs: Path, upstream_port: int, http_port: int, https_port: int) -> Path:
    """The project's nginx site on loopback ports, rendered as the proxy image renders it.

    The template's variables get what ``deploy/images/proxy-entrypoint.sh`` gives them; only
    the listen ports, the certificate folder, the ACME webroot and the upstream change.
    """
    site = (DEPLOY / "nginx" / "itagger.conf.template").read_text()
    replacements = {
        "${ITAGGER_SERVER_NAME}": "127.0.0.1",
        "${ITAGGER_HTTPS_PORT_SUFFIX}": f":{https_port}",
        "/tmp/nginx/tls": str(certs),
        "root /var/www/acme;": f"root {folder / 'acme'};",
        "hub:8000": f"127.0.0.1:{upstream_port}",
        "listen 8080;": f"listen 127.0.0.1:{http_port};",
        "listen 8443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
    }
    for old, new in replacements.items():
        assert old in site, f"deploy/nginx/itagger.conf.template no longer contains {old!r}; update the test"
        site = site.replace(old, new)
    (folder / "site.conf").write_text(site)
    conf = folder / "nginx.conf"
    # as root, nginx's workers would run as nobody and could not read the test's private folders
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf.write_text(
        f"{user}daemon off; pid {folder}/nginx.pid; error_log {folder}/nginx-error.log;\n"
        f"events {{}}\nhttp {{ access_log {folder}/nginx-access.log; client_body_temp_path {folder};\n"
        f"proxy_temp_path {folder}; server_tokens off;\ninclude {folder}/site.conf; }}\n"
    )
    return conf


def wait_until(what: str, ok: Any, procs: list[Proc], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ok():
                return
        except (requests.RequestException, OSError):
            pass
        dead = [p.name for p in procs if p.popen.poll() is not None]
        if dead or time.monotonic() > deadline:
            raise RuntimeError(f"{what}: {'exited: ' + ', '.join(dead) if dead else 'timed out'}")
        time.sleep(0.25)


@dataclass
class HubStack:
    root: Path
    https: str  # https://127.0.0.1:<port>
    http: str  # http://127.0.0.1:<port>
    ca: str
    env_file: Path
    backups: Path
    owner_url: str  # the workbench database, as its owner
    admin_user: str
    admin_password: str
    procs: list[Proc] = field(default_factory=list)
    api_token: str = ""
    passwords: dict[str, str] = field(default_factory=dict)

    def log_tails(self) -> str:
        out = []
        for p in self.procs:
            out.append(f"----- {p.name} ({p.log}) -----\n{p.tail()}")
        for extra in ("nginx-error.log",):
            path = self.root / extra
            if path.exists():
                out.append(f"----- {extra} -----\n" + "\n".join(path.read_text().splitlines()[-30:]))
        for log in sorted((self.root / "homes").glob("*/*.log")):
            out.append(f"----- {log} -----\n" + "\n".join(log.read_text().splitlines()[-30:]))
        return "\n".join(out)

    # ---- hub REST API with the admin's token ------------------------------------------------
    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        r = requests.request(
            method,
            f"{self.https}/hub/api{path}",
            headers={"Authorization": f"token {self.api_token}"},
            verify=self.ca,
            timeout=30,
            **kwargs,
        )
        if r.status_code >= 400:
            raise RuntimeError(f"{method} /hub/api{path}: {r.status_code} {r.text[:300]}")
        return r

    def login_session(self, username: str, password: str) -> requests.Session:
        """A requests session logged in to the hub through nginx."""
        s = requests.Session()
        s.verify = self.ca
        s.trust_env = False  # else REQUESTS_CA_BUNDLE replaces the verify above
        page = s.get(f"{self.https}/hub/login", timeout=30)
        s.post(
            f"{self.https}/hub/login",
            data={"username": username, "password": password, "_xsrf": _xsrf(page.text, s)},
            timeout=30,
            allow_redirects=False,  # following would spawn the user's server
        )
        if not any(c.name.startswith("jupyterhub-hub-login") for c in s.cookies):
            raise RuntimeError(f"login of {username} through {self.https} failed")
        return s

    def signup_and_authorize(self, username: str) -> str:
        """Sign ``username`` up on NativeAuthenticator's page, authorize as admin; the password."""
        password = secrets.token_urlsafe(18)
        s = requests.Session()
        s.verify = self.ca
        s.trust_env = False  # else REQUESTS_CA_BUNDLE replaces the verify above
        page = s.get(f"{self.https}/hub/signup", timeout=30)
        r = s.post(
            f"{self.https}/hub/signup",
            data={
                "username": username,
                "signup_password": password,
                "signup_password_confirmation": password,
                "email": f"{username}@example.org",
                "_xsrf": _xsrf(page.text, s),
            },
            timeout=30,
        )
        alert = re.search(r'class="alert[^"]*"[^>]*>(.*?)</div>', r.text, re.S)
        message = " ".join(alert.group(1).split()) if alert else r.text[-300:]
        if not (r.ok and "sent to the admin" in message):
            raise RuntimeError(f"signup of {username}: {r.status_code} {message}")
        admin = self.login_session(self.admin_user, self.admin_password)
        admin.get(f"{self.https}/hub/authorize/{username}", timeout=30).raise_for_status()
        self.passwords[username] = password
        return password

    def server_pid(self, username: str) -> int:
        """The process id of ``username``'s running single-user server (from the hub's state)."""
        user = self.api("GET", f"/users/{username}").json()
        state = (user.get("servers", {}).get("", {}) or {}).get("state") or {}
        if state.get("pid"):
            return int(state["pid"])
        for proc in Path("/proc").iterdir():  # fallback: the server's environment names the user
            if proc.name.isdigit():
                try:
                    environ = (proc / "environ").read_bytes().split(b"\0")
                except OSError:
                    continue
                if f"JUPYTERHUB_USER={username}".encode() in environ and b"ITAGGER_DB_ROLE" in b"".join(
                    environ
                ):
                    return int(proc.name)
        raise RuntimeError(f"no running server process for {username}")


def _xsrf(html: str, session: requests.Session) -> str:
    m = re.search(r'name="_xsrf" value="([^"]+)"', html)
    return m.group(1) if m else session.cookies.get("_xsrf", "")


def server_environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def _seed_workbench(owner_url: str, root: Path, sample_dir: Path) -> None:
    """What an admin does before the taggers come: migrate, ingest, codebook, study, backup."""
    from itagger_lib import Workspace
    from itagger_lib.ops.security import apply_row_level_security
    from itagger_lib.ratings.studies import create_study

    ws = Workspace(database_url=owner_url, store=root / "store", home=root / "adminhome", user="hubadmin")
    try:
        ws.ingest(sample_dir, progress=False)
        ws.load_codebook(CODEBOOK)
        create_study(ws, "hub-pilot", raters_per_image=2, seed=7)
        apply_row_level_security(ws.engine)
    finally:
        ws.close()
    env = {**os.environ, "ITAGGER_DATABASE_URL": owner_url, "ITAGGER_STORE": str(root / "store")}
    env.pop("ITAGGER_STORE_READONLY", None)
    done = subprocess.run(
        [sys.executable, "-m", "itagger_lib.cli", "backup", str(root / "backups" / "today")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"itagger backup failed: {done.stdout}\n{done.stderr}")


def _print_tails_on_error(stack: HubStack) -> None:
    if sys.exc_info()[0] is not None:
        print(stack.log_tails())


def _reap(root: Path) -> None:
    """Stop leftovers of this stack only: processes whose working folder lies under ``root``."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cwd = Path(os.readlink(proc / "cwd"))
        except OSError:
            continue
        if cwd == root or root in cwd.parents:
            with suppress(OSError):
                os.kill(int(proc.name), 15)


@contextmanager
def hub_stack(root: Path, pg_server_url: str, sample_dir: Path) -> Iterator[HubStack]:
    """Start Postgres database, hub, proxy and nginx; tear everything down afterwards."""
    tag = uuid.uuid4().hex[:8]
    owner, db_name = f"itg_own_{tag}", f"itagger_hub_{tag}"
    owner_password = secrets.token_urlsafe(32)
    server = sa.make_url(pg_server_url)
    cluster = sa.create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    with cluster.connect() as conn:
        # like the compose stack's POSTGRES_USER: a superuser owning the workbench database
        conn.exec_driver_sql(f"CREATE ROLE {owner} LOGIN SUPERUSER PASSWORD '{owner_password}'")
        conn.exec_driver_sql(f'CREATE DATABASE "{db_name}" OWNER {owner}')
    owner_url = server.set(username=owner, password=owner_password, database=db_name).render_as_string(
        hide_password=False
    )
    ports = {k: free_port() for k in ("proxy", "api", "hub", "http", "https")}
    stack = HubStack(
        root=root,
        https=f"https://127.0.0.1:{ports['https']}",
        http=f"http://127.0.0.1:{ports['http']}",
        ca=str(self_signed_cert(root / "certs")),
        env_file=root / "hub.env",
        backups=root / "backups",
        owner_url=owner_url,
        admin_user=f"hubadmin{tag[:4]}",
        admin_password=secrets.token_urlsafe(24),
    )
    try:
        with ExitStack() as cleanup:
            cleanup.callback(_print_tails_on_error, stack)
            cleanup.callback(lambda: [p.stop() for p in reversed(stack.procs)])
            _seed_workbench(owner_url, root, sample_dir)
            deploy_env = hubconfig.parse_env_file((DEPLOY / ".env.example").read_text())
            deploy_env.update(
                {
                    "JUPYTERHUB_COOKIE_SECRET": secrets.token_hex(32),
                    "JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32),
                    "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(32),
                    "ADMIN_USER": stack.admin_user,
                    "ADMIN_PASSWORD": stack.admin_password,
                    "POSTGRES_DB": db_name,
                    "POSTGRES_USER": owner,
                    "POSTGRES_PASSWORD": owner_password,
                    "ITAGGER_ROLE_PASSWORD_KEY": secrets.token_hex(32),
                    "ITAGGER_SERVER_NAME": "127.0.0.1",
                    "ITAGGER_CERTS_DIR": str(root / "certs"),
                    # the redirect check's port-80 server listens elsewhere on loopback
                    "ITAGGER_HTTP_URL": stack.http,
                }
            )
            stack.env_file.write_text("".join(f"{k}={v}\n" for k, v in deploy_env.items()))
            stack.env_file.chmod(0o600)
            hub_env = {
                **{k: v for k, v in os.environ.items() if not k.startswith(("ITAGGER_", "JUPYTER"))},
                **deploy_env,
                "POSTGRES_HOST": str(server.host or "127.0.0.1"),
                "POSTGRES_PORT": str(server.port or 5432),
                "ITAGGER_SPAWNER": "simple",
                "HUB_DB_URL": f"sqlite:///{root / 'jupyterhub.sqlite'}",
                "ITAGGER_HUB_BIND_URL": f"http://127.0.0.1:{ports['proxy']}",
                "ITAGGER_HUB_PORT": str(ports["hub"]),
                "ITAGGER_PROXY_API_URL": f"http://127.0.0.1:{ports['api']}",
                "ITAGGER_HOMES_DIR": str(root / "homes"),
                "ITAGGER_STORE_PATH": str(root / "store"),
                "ITAGGER_SINGLEUSER_ARGS": SINGLEUSER_ARGS,
                "JUPYTER_CONFIG_DIR": str(root / "hub-jupyter-config"),
            }
            (root / "hub").mkdir()
            stack.procs.append(
                start(
                    "jupyterhub",
                    [sys.executable, "-m", "jupyterhub", "-f", str(DEPLOY / "jupyterhub_config.py")],
                    root / "hub",
                    hub_env,
                )
            )
            conf = render_nginx(root, root / "certs", ports["proxy"], ports["http"], ports["https"])
            stack.procs.append(start("nginx", [NGINX, "-c", str(conf), "-p", str(root)], root))
            wait_until(
                "hub login page through nginx",
                lambda: (
                    requests.get(f"{stack.https}/hub/login", verify=stack.ca, timeout=5).status_code == 200
                ),
                stack.procs,
                timeout=90,
            )
            admin = stack.login_session(stack.admin_user, stack.admin_password)
            r = admin.post(
                f"{stack.https}/hub/api/users/{stack.admin_user}/tokens",
                json={"note": "hub test", "expires_in": 3600},
                headers={"X-XSRFToken": admin.cookies.get("_xsrf", "")},
                timeout=30,
            )
            if not r.ok:
                raise RuntimeError(f"admin token: {r.status_code} {r.text[:300]}")
            stack.api_token = r.json()["token"]
            yield stack
    finally:
        _reap(root)
        with cluster.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
            for user in stack.passwords:
                conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{hubconfig.role_name(user)}"')
            conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{hubconfig.role_name(stack.admin_user)}"')
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {owner}")
        cluster.dispose()
