"""JupyterHub configuration for Image Tagger (compose stack and native loopback runs).

Environment (see deploy/.env.example): JUPYTERHUB_COOKIE_SECRET, JUPYTERHUB_CRYPT_KEY,
CONFIGPROXY_AUTH_TOKEN, ADMIN_USER, ADMIN_PASSWORD, POSTGRES_{HOST,PORT,DB,USER,PASSWORD},
ITAGGER_ROLE_PASSWORD_KEY, OPENAI_API_KEY, ANTHROPIC_API_KEY, ITAGGER_SPAWNER (docker|local|simple),
HUB_DB_URL, ITAGGER_HUB_BIND_URL, ITAGGER_SINGLEUSER_IMAGE, DOCKER_NETWORK_NAME.
The hub refuses to start when a secret is missing, short or still the example value.

Native runs (``ITAGGER_SPAWNER=local``: one Unix account per hub user; ``simple``: every
server runs as the hub's own user with home ``ITAGGER_HOMES_DIR/<name>``, for tests and
demos only) also read ITAGGER_HUB_PORT (hub API port, default 8081), ITAGGER_PROXY_API_URL
(configurable-http-proxy's REST API, default http://127.0.0.1:8001), ITAGGER_NOTEBOOKS_DIR
(notebooks copied into a new home, default the repository's notebooks/) and
ITAGGER_SINGLEUSER_ARGS (extra single-user server arguments). configurable-http-proxy is
taken from deploy/node_modules/.bin (``cd deploy && npm install``) when present.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

from itagger_lib.ops import hubconfig

c = get_config()  # type: ignore[name-defined]  # noqa: F821

env = dict(os.environ)

# ---- start-up check: no missing/example secrets -------------------------------------------
_example = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".env.example")
_placeholders: list[str] = []
if os.path.exists(_example):
    with open(_example, encoding="utf-8") as fh:
        _placeholders = [v for v in hubconfig.parse_env_file(fh.read()).values() if v]
hubconfig.validate_secrets(env, placeholders=_placeholders)
if not env.get("ADMIN_USER"):
    raise hubconfig.ConfigError("ADMIN_USER is not set; set it in deploy/.env (see deploy/.env.example)")

ADMIN_USER = env["ADMIN_USER"]
c.JupyterHub.cookie_secret = (
    bytes.fromhex(env["JUPYTERHUB_COOKIE_SECRET"])
    if all(ch in "0123456789abcdef" for ch in env["JUPYTERHUB_COOKIE_SECRET"].lower())
    and len(env["JUPYTERHUB_COOKIE_SECRET"]) % 2 == 0
    else env["JUPYTERHUB_COOKIE_SECRET"].encode()
)
os.environ.setdefault("CONFIGPROXY_AUTH_TOKEN", env["CONFIGPROXY_AUTH_TOKEN"])
# The hub is only ever reached through nginx's TLS: its cookies are Secure whatever scheme the
# hop from nginx reports (configurable-http-proxy appends its own "http" to X-Forwarded-Proto).
c.JupyterHub.tornado_settings = {"cookie_options": {"secure": True}}

# ---- hub itself: own database, separate from the workbench database ------------------------
c.JupyterHub.db_url = env.get("HUB_DB_URL", "sqlite:///jupyterhub.sqlite")
c.JupyterHub.bind_url = env.get("ITAGGER_HUB_BIND_URL", "http://:8000")
SPAWNER = env.get("ITAGGER_SPAWNER", "docker")
if SPAWNER not in ("docker", "local", "simple"):
    raise hubconfig.ConfigError(f"ITAGGER_SPAWNER={SPAWNER!r}; use docker, local or simple")
c.JupyterHub.hub_ip = env.get("ITAGGER_HUB_IP", "0.0.0.0" if SPAWNER == "docker" else "127.0.0.1")
if env.get("ITAGGER_HUB_PORT"):
    c.JupyterHub.hub_port = int(env["ITAGGER_HUB_PORT"])
if env.get("ITAGGER_PROXY_API_URL"):
    c.ConfigurableHTTPProxy.api_url = env["ITAGGER_PROXY_API_URL"]
_DEPLOY = Path(__file__).resolve().parent
_CHP = _DEPLOY / "node_modules" / ".bin" / "configurable-http-proxy"
if SPAWNER != "docker" and _CHP.exists():
    c.ConfigurableHTTPProxy.command = [str(_CHP)]

# ---- authentication: NativeAuthenticator, admin approval, lockout --------------------------
c.JupyterHub.authenticator_class = "nativeauthenticator.NativeAuthenticator"
c.NativeAuthenticator.open_signup = False  # new accounts wait for admin approval
c.NativeAuthenticator.allowed_failed_logins = 5
c.NativeAuthenticator.seconds_before_next_try = 600
c.NativeAuthenticator.check_common_password = True
c.NativeAuthenticator.minimum_password_length = 12
c.NativeAuthenticator.enable_signup = True
c.Authenticator.admin_users = {ADMIN_USER}
c.Authenticator.allow_all = True  # NativeAuthenticator's approval step is the allow-list

# groups: membership managed by admins in the hub admin page
c.JupyterHub.load_groups = {
    "tagger": {"users": []},
    "researcher": {"users": []},
    "admin": {"users": [ADMIN_USER]},
}
c.JupyterHub.load_roles = [
    {
        "name": "jupyterhub-idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["jupyterhub-idle-culler"],
    }
]
c.JupyterHub.services = [
    {
        "name": "jupyterhub-idle-culler",
        "command": [
            sys.executable,
            "-m",
            "jupyterhub_idle_culler",
            f"--timeout={int(env.get('ITAGGER_IDLE_TIMEOUT', '3600'))}",
        ],
    }
]


try:
    from itagger_lib.ops.hub_auth import ItaggerAuthenticator
except ImportError:  # pragma: no cover - the hub extra (nativeauthenticator) is not installed
    ItaggerAuthenticator = None

if ItaggerAuthenticator is not None:
    c.JupyterHub.authenticator_class = ItaggerAuthenticator
    c.ItaggerAuthenticator.bootstrap_admin_user = ADMIN_USER
    c.ItaggerAuthenticator.bootstrap_admin_password = env["ADMIN_PASSWORD"]


# ---- per-user server: DB role, store mode and environment from hubconfig -------------------
DB_HOST = env.get("POSTGRES_HOST", "db")
DB_PORT = int(env.get("POSTGRES_PORT", "5432"))
DB_NAME = env.get("POSTGRES_DB", "itagger")
STORE = env.get("ITAGGER_STORE_PATH", "/srv/itagger/store")


def _ensure_db_role(username: str, group: str) -> None:
    """Create/refresh the user's login role as the Postgres owner (I/O at the edge)."""
    import psycopg

    sql = hubconfig.create_role_sql(
        hubconfig.role_name(username),
        hubconfig.role_password(username, env["ITAGGER_ROLE_PASSWORD_KEY"]),
        group,
    )
    with psycopg.connect(
        host=DB_HOST,
        port=DB_PORT,
        dbname=DB_NAME,
        user=env.get("POSTGRES_USER", "postgres"),
        password=env.get("POSTGRES_PASSWORD"),
        autocommit=True,
    ) as conn:
        from itagger_lib.ops.security import apply_row_level_security_sql

        for stmt in apply_row_level_security_sql():
            conn.execute(stmt)
        for stmt in sql:
            conn.execute(stmt)
        from itagger_lib.ops.security import map_role_sql

        conn.execute(map_role_sql(hubconfig.role_name(username), username))


def _seed_home(home: Path) -> None:
    """Copy the workbench notebooks into a new home folder (never over a user's own copy)."""
    source = Path(env.get("ITAGGER_NOTEBOOKS_DIR") or _DEPLOY.parent / "notebooks")
    home.mkdir(parents=True, exist_ok=True)
    for nb in sorted(source.glob("*.ipynb")):
        if not (home / nb.name).exists():
            shutil.copy(nb, home / nb.name)


async def pre_spawn_hook(spawner) -> None:  # pragma: no cover - runs inside the hub
    user = spawner.user
    groups = [g.name for g in user.groups]
    if user.admin:
        groups.append("admin")
    group = hubconfig.primary_group(groups)
    if env.get("ITAGGER_SKIP_DB_ROLES") != "1":
        _ensure_db_role(user.name, group)
    spawner.environment.update(
        hubconfig.user_environment(
            user.name, groups, env, db_host=DB_HOST, db_name=DB_NAME, db_port=DB_PORT, store=STORE
        )
    )
    # taggers land in the tagging app, researchers and admins in JupyterLab
    spawner.default_url = hubconfig.default_url(groups)
    if SPAWNER == "simple":
        _seed_home(Path(spawner.home_dir))
    if hasattr(spawner, "volumes"):
        spawner.volumes = {
            "itagger-home-{username}": "/home/jovyan",
            env.get("ITAGGER_STORE_VOLUME", "itagger_data_store"): {
                "bind": STORE,
                "mode": hubconfig.store_mount_mode(groups),
            },
        }


c.Spawner.pre_spawn_hook = pre_spawn_hook
c.Spawner.default_url = hubconfig.LAB_URL  # per user in pre_spawn_hook
# extra single-user server options (e.g. --LabApp.expose_app_in_browser=True for browser tests)
c.Spawner.args = shlex.split(env.get("ITAGGER_SINGLEUSER_ARGS", ""))

if SPAWNER == "docker":
    c.JupyterHub.spawner_class = "dockerspawner.DockerSpawner"
    # built by `docker compose build` (the init service's image); never pulled from a registry,
    # where whoever owns the name would receive every user's database login and keys
    c.DockerSpawner.image = env.get("ITAGGER_SINGLEUSER_IMAGE", "itagger/singleuser:latest")
    c.DockerSpawner.pull_policy = "never"
    c.DockerSpawner.network_name = env.get("DOCKER_NETWORK_NAME", "itagger_backend")
    c.DockerSpawner.use_internal_ip = True
    c.DockerSpawner.remove = True
    c.DockerSpawner.notebook_dir = "/home/jovyan"
    c.DockerSpawner.mem_limit = hubconfig.user_limits(env).mem_limit
    c.DockerSpawner.cpu_limit = hubconfig.user_limits(env).cpu_limit
    c.DockerSpawner.extra_host_config = hubconfig.user_host_config(env)
    # per-user home volume; the store is added per group in pre_spawn_hook
    c.DockerSpawner.volumes = {"itagger-home-{username}": "/home/jovyan"}
    # the user servers reach the hub's API by its service name on the backend network
    c.JupyterHub.hub_connect_ip = env.get("ITAGGER_HUB_CONNECT_IP", "hub")
else:
    c.JupyterHub.spawner_class = (
        "jupyterhub.spawner.SimpleLocalProcessSpawner"
        if SPAWNER == "simple"
        else "jupyterhub.spawner.LocalProcessSpawner"
    )
    c.LocalProcessSpawner.ip = "127.0.0.1"
    # the single-user server of this Python environment (the one with itagger_lib)
    c.Spawner.cmd = [str(Path(sys.executable).parent / "jupyterhub-singleuser")]
    if SPAWNER == "simple":
        # NOT for production: no isolation between users (tests and demos on loopback)
        c.SimpleLocalProcessSpawner.home_dir_template = str(
            Path(env.get("ITAGGER_HOMES_DIR") or "/tmp/itagger-homes") / "{username}"
        )
        if os.geteuid() == 0:
            c.Spawner.args.append("--allow-root")
