"""Settings from the environment: where the database and the image store live, and limits.

=========================  ======================================================
``ITAGGER_HOME``           folder for the SQLite database, the store and batch runs
                           (default ``~/itagger``)
``ITAGGER_DATABASE_URL``   ``sqlite:///…`` or ``postgresql+psycopg://…``
                           (default: ``ITAGGER_HOME/itagger.db``, WAL mode)
``ITAGGER_STORE``          the content-addressed image store (default ``ITAGGER_HOME/store``)
``ITAGGER_MAX_MEGAPIXELS`` decompression-bomb limit for ingest (default 200)
``ITAGGER_AUTO_MIGRATE``   ``0`` to refuse opening a database with pending migrations
``ITAGGER_STORE_READONLY`` ``1`` to refuse every write to the store (hub taggers)
``ITAGGER_USER``           the user name recorded when not under JupyterHub
``ITAGGER_PG_BINDIR``      PostgreSQL client programs (``psql``, ``pg_dump``); see db/libpq.py
=========================  ======================================================

``ITAGGER_CLUSTER_TIMEOUT``: seconds a science run on Dask waits for a scheduler it cannot
reach, or for a worker when none is left, before it stops (default 60; docs/scale.md).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from itagger_lib.errors import ConfigError

DEFAULT_MAX_MEGAPIXELS = 200.0
DEFAULT_CLUSTER_TIMEOUT = 60.0


def current_user(environ: Mapping[str, str] | None = None) -> str:
    """Who is working: ``JUPYTERHUB_USER`` under JupyterHub, else ``ITAGGER_USER``, else the OS user."""
    env = os.environ if environ is None else environ
    for name in ("JUPYTERHUB_USER", "ITAGGER_USER"):
        if env.get(name):
            return env[name]
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


def store_readonly(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``ITAGGER_STORE_READONLY`` marks the image store read-only (default: no)."""
    return _flag(os.environ if environ is None else environ, "ITAGGER_STORE_READONLY", False)


def store_path(environ: Mapping[str, str] | None = None) -> Path:
    """The image store the environment names: ``ITAGGER_STORE``, else ``ITAGGER_HOME/store``.

    What a Dask worker reads images from (it has no workspace of its own): a worker on
    another machine sets ``ITAGGER_STORE`` to where the shared store is mounted there.
    """
    env = os.environ if environ is None else environ
    home = Path(env.get("ITAGGER_HOME") or "~/itagger").expanduser()
    return Path(env.get("ITAGGER_STORE") or home / "store").expanduser().absolute()


def cluster_timeout(environ: Mapping[str, str] | None = None) -> float:
    """``ITAGGER_CLUSTER_TIMEOUT`` in seconds (default 60): how long a science run on Dask
    waits for a scheduler it cannot reach, or for a worker when it has none."""
    env = os.environ if environ is None else environ
    raw = env.get("ITAGGER_CLUSTER_TIMEOUT")
    if not raw:
        return DEFAULT_CLUSTER_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"ITAGGER_CLUSTER_TIMEOUT={raw!r} is not a positive number of seconds; set e.g. 60")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}={raw!r} is not a yes/no value; use 1 or 0")


@dataclass(frozen=True)
class Settings:
    """Where a workspace keeps its data, and its limits."""

    home: Path
    database_url: str
    store: Path
    max_megapixels: float = DEFAULT_MAX_MEGAPIXELS
    auto_migrate: bool = True
    user: str = "unknown"
    store_readonly: bool = False

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        home: str | Path | None = None,
        database_url: str | None = None,
        store: str | Path | None = None,
        max_megapixels: float | None = None,
        auto_migrate: bool | None = None,
        user: str | None = None,
    ) -> Settings:
        """Settings from explicit arguments, then the environment, then defaults."""
        env = os.environ if environ is None else environ
        home_path = Path(home or env.get("ITAGGER_HOME") or "~/itagger").expanduser()
        url = database_url or env.get("ITAGGER_DATABASE_URL") or ""
        if not url:
            url = f"sqlite:///{(home_path / 'itagger.db').resolve()}"
        store_path = Path(store or env.get("ITAGGER_STORE") or home_path / "store").expanduser()
        if max_megapixels is None:
            raw = env.get("ITAGGER_MAX_MEGAPIXELS")
            try:
                max_megapixels = float(raw) if raw else DEFAULT_MAX_MEGAPIXELS
            except ValueError as exc:
                raise ConfigError(
                    f"ITAGGER_MAX_MEGAPIXELS={raw!r} is not a number; set it to e.g. 200"
                ) from exc
        if max_megapixels <= 0:
            raise ConfigError(f"max_megapixels must be positive, got {max_megapixels}")
        if auto_migrate is None:
            auto_migrate = _flag(env, "ITAGGER_AUTO_MIGRATE", True)
        return cls(
            home=home_path.resolve(),
            database_url=url,
            store=store_path.resolve(),
            max_megapixels=max_megapixels,
            auto_migrate=auto_migrate,
            user=user or current_user(env),
            store_readonly=store_readonly(env),
        )
