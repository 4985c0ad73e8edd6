"""Pure helpers for ``deploy/jupyterhub_config.py``: secrets, per-user environment and DB roles.

Nothing here touches the network or a database; the hub config calls these functions and
performs the I/O itself, so every rule can be unit tested.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from itagger_lib.errors import ConfigError

#: Secrets the hub refuses to start without.
REQUIRED_SECRETS: tuple[str, ...] = (
    "JUPYTERHUB_COOKIE_SECRET",
    "JUPYTERHUB_CRYPT_KEY",
    "CONFIGPROXY_AUTH_TOKEN",
    "ADMIN_PASSWORD",
    "POSTGRES_PASSWORD",
    "ITAGGER_ROLE_PASSWORD_KEY",
)
#: Minimum length of a secret.
MIN_SECRET_LENGTH = 32
#: Prefixes of the placeholder values shipped in ``deploy/.env.example``.
PLACEHOLDER_PREFIXES: tuple[str, ...] = ("change-me", "changeme", "change_me")
#: Well-known default values that are never acceptable.
KNOWN_DEFAULTS: frozenset[str] = frozenset({"postgres", "password", "secret", "admin", "itagger"})

GROUPS: tuple[str, ...] = ("tagger", "researcher", "admin")
GROUP_ROLES: dict[str, str] = {g: f"itagger_{g}" for g in GROUPS}
#: Session defaults set on every login role (``ALTER ROLE … SET``), by group: how long a
#: statement may wait for a lock, run, or leave a transaction idle. Taggers' statements are
#: small (one claim, one answer); researchers and admins run analyses and migrations. A
#: session may lower or raise its own values: these bound what a forgotten notebook or a
#: stuck client holds, while the grants keep taggers from taking locks others need.
ROLE_TIMEOUTS: dict[str, dict[str, str]] = {
    "tagger": {
        "lock_timeout": "5s",
        "statement_timeout": "30s",
        "idle_in_transaction_session_timeout": "1min",
    },
    "researcher": {
        "lock_timeout": "30s",
        "statement_timeout": "30min",
        "idle_in_transaction_session_timeout": "10min",
    },
    "admin": {
        "lock_timeout": "30s",
        "statement_timeout": "30min",
        "idle_in_transaction_session_timeout": "10min",
    },
}
VLM_KEYS: tuple[str, ...] = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")
#: Where the VLM clients send requests (an OpenAI-compatible server, a gateway); not secret,
#: but only the servers that hold keys need them.
VLM_URLS: tuple[str, ...] = ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL")
#: Per-user container limits when deploy/.env sets none: enough for science on a few
#: thousand images and JupyterLab, small enough that four users fit a 16 GB server.
DEFAULT_MEM_LIMIT = "4G"
DEFAULT_CPU_LIMIT = 2.0
#: Docker log rotation of the user containers (the compose services set the same).
DEFAULT_LOG_MAX_SIZE = "10m"
DEFAULT_LOG_MAX_FILES = "5"


def secret_problem(name: str, value: str | None, placeholders: Iterable[str] = ()) -> str | None:
    """Why ``value`` is not an acceptable secret for variable ``name``, or None when it is."""
    if value is None or value.strip() == "":
        return f"{name} is not set; set it in deploy/.env (see deploy/.env.example)"
    low = value.strip().lower()
    if low.startswith(PLACEHOLDER_PREFIXES) or value in set(placeholders) or low in KNOWN_DEFAULTS:
        return (
            f"{name} still has the example/default value; replace it with a random secret "
            "(python -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )
    if len(value) < MIN_SECRET_LENGTH:
        return (
            f"{name} is {len(value)} characters long; use at least {MIN_SECRET_LENGTH} random "
            "characters (python -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )
    if len(set(value)) < 8:
        return f"{name} is not random (fewer than 8 distinct characters); generate a new one"
    return None


def validate_secrets(
    env: Mapping[str, str],
    names: Iterable[str] = REQUIRED_SECRETS,
    placeholders: Iterable[str] = (),
) -> None:
    """Raise :class:`ConfigError` naming every missing, short or example secret in ``env``."""
    ph = list(placeholders)
    problems = [p for n in names if (p := secret_problem(n, env.get(n), ph))]
    if problems:
        raise ConfigError("Refusing to start: " + "; ".join(problems))


def parse_env_file(text: str) -> dict[str, str]:
    """Parse ``KEY=value`` lines of a docker-compose ``.env`` file (comments and blanks ignored)."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key] = value
    return out


def role_name(username: str) -> str:
    """A safe Postgres role name for hub user ``username``: ``itu_<slug>_<hash8>``.

    Lower-case ``[a-z0-9_]`` only, at most 63 bytes; the hash keeps distinct users distinct
    even when their slugs collide (``Ann.B`` vs ``ann_b``).
    """
    if not username:
        raise ConfigError("Cannot derive a database role from an empty user name")
    slug = re.sub(r"[^a-z0-9]+", "_", username.lower()).strip("_")[:40] or "user"
    digest = hashlib.sha256(username.encode()).hexdigest()[:8]
    return f"itu_{slug}_{digest}"


def role_password(username: str, key: str) -> str:
    """Deterministic per-user DB password: HMAC-SHA256(key, username), hex."""
    return hmac.new(key.encode(), username.encode(), hashlib.sha256).hexdigest()


def primary_group(groups: Iterable[str]) -> str:
    """The most privileged of the user's itagger groups (admin > researcher > tagger)."""
    gs = set(groups)
    for g in ("admin", "researcher", "tagger"):
        if g in gs:
            return g
    return "tagger"


#: where a user's server opens: taggers in the tagging app (``notebooks/tagging_app.ipynb``
#: served by Voilà's server extension), everyone else in JupyterLab
TAGGING_APP_URL = "/voila/render/tagging_app.ipynb"
LAB_URL = "/lab"


def default_url(groups: Iterable[str]) -> str:
    """The page a user lands on: the tagging app for taggers (and users in no group, who
    get the tagger's rights), JupyterLab for researchers and admins."""
    return TAGGING_APP_URL if primary_group(groups) == "tagger" else LAB_URL


def quote_ident(name: str) -> str:
    """Quote a SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """Quote a SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def create_role_sql(role: str, password: str, group: str) -> list[str]:
    """Idempotent SQL creating login ``role`` in group role ``itagger_<group>`` (and only it)."""
    if group not in GROUP_ROLES:
        raise ConfigError(f"Unknown group {group!r}; use one of {', '.join(GROUPS)}")
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", role):
        raise ConfigError(f"Unsafe database role name {role!r}; derive it with role_name()")
    r, pw = quote_ident(role), quote_literal(password)
    stmts = [
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = "
        f"{quote_literal(role)}) THEN CREATE ROLE {r} LOGIN; END IF; END $$",
        f"ALTER ROLE {r} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {pw}",
    ]
    for g, grole in GROUP_ROLES.items():
        if g != group:
            stmts.append(f"REVOKE {quote_ident(grole)} FROM {r}")  # a warning if not a member
    stmts.append(f"GRANT {quote_ident(GROUP_ROLES[group])} TO {r}")
    stmts += [
        f"ALTER ROLE {r} SET {name} = {quote_literal(value)}" for name, value in ROLE_TIMEOUTS[group].items()
    ]
    return stmts


def database_url(role: str, password: str, host: str, database: str, port: int = 5432) -> str:
    """``postgresql+psycopg://`` URL for a per-user role."""
    return f"postgresql+psycopg://{quote(role, safe='')}:{quote(password, safe='')}@{host}:{port}/{database}"


def user_environment(
    username: str,
    groups: Iterable[str],
    env: Mapping[str, str],
    *,
    db_host: str,
    db_name: str,
    db_port: int = 5432,
    store: str = "/srv/itagger/store",
) -> dict[str, str]:
    """Environment for a user's single-user server.

    Taggers: ``ITAGGER_STORE_READONLY=1`` and no VLM keys. Researchers/admins: read-write store
    and the VLM keys present in ``env``. All: their own DB role, ``ITAGGER_AUTO_MIGRATE=0``
    (admins get ``1`` so they can run ``itagger db upgrade``).
    """
    group = primary_group(groups)
    role = role_name(username)
    key = env.get("ITAGGER_ROLE_PASSWORD_KEY", "")
    if not key:
        raise ConfigError("ITAGGER_ROLE_PASSWORD_KEY is not set; set it in deploy/.env")
    out = {
        "ITAGGER_DATABASE_URL": database_url(role, role_password(username, key), db_host, db_name, db_port),
        "ITAGGER_STORE": store,
        "ITAGGER_STORE_READONLY": "1" if group == "tagger" else "0",
        "ITAGGER_AUTO_MIGRATE": "1" if group == "admin" else "0",
        "ITAGGER_GROUP": group,
        "ITAGGER_DB_ROLE": role,
    }
    if group != "tagger":
        for k in (*VLM_KEYS, *VLM_URLS):
            if env.get(k):
                out[k] = env[k]
    return out


@dataclass(frozen=True)
class UserLimits:
    """Memory and CPU limits of one user's container (DockerSpawner's ``mem_limit``/``cpu_limit``)."""

    mem_limit: str
    cpu_limit: float


def user_limits(env: Mapping[str, str]) -> UserLimits:
    """``ITAGGER_USER_MEM_LIMIT`` (e.g. ``4G``, ``512M``) and ``ITAGGER_USER_CPU_LIMIT`` (cores).

    Raises :class:`ConfigError` naming the variable when a value is not a size or a number.
    """
    mem = (env.get("ITAGGER_USER_MEM_LIMIT") or DEFAULT_MEM_LIMIT).strip()
    if not re.fullmatch(r"[1-9][0-9]*(\.[0-9]+)?[KMGT]?", mem, flags=re.IGNORECASE):
        raise ConfigError(
            f"ITAGGER_USER_MEM_LIMIT={mem!r} is not a size; write e.g. 4G or 512M in deploy/.env"
        )
    raw_cpu = (env.get("ITAGGER_USER_CPU_LIMIT") or str(DEFAULT_CPU_LIMIT)).strip()
    try:
        cpu = float(raw_cpu)
    except ValueError:
        cpu = -1.0
    if not cpu > 0:
        raise ConfigError(
            f"ITAGGER_USER_CPU_LIMIT={raw_cpu!r} is not a positive number of cores; "
            "write e.g. 2 in deploy/.env"
        )
    return UserLimits(mem.upper(), cpu)


def user_host_config(env: Mapping[str, str]) -> dict[str, Any]:
    """Docker host settings of every user container: log rotation, an init, no privilege gain."""
    return {
        "log_config": {
            "type": "json-file",
            "config": {
                "max-size": env.get("ITAGGER_LOG_MAX_SIZE") or DEFAULT_LOG_MAX_SIZE,
                "max-file": env.get("ITAGGER_LOG_MAX_FILES") or DEFAULT_LOG_MAX_FILES,
            },
        },
        "init": True,
        "security_opt": ["no-new-privileges"],
        "pids_limit": 1024,
    }


def store_mount_mode(groups: Iterable[str]) -> str:
    """DockerSpawner volume mode for the shared store: ``ro`` for taggers, ``rw`` otherwise."""
    return "ro" if primary_group(groups) == "tagger" else "rw"
