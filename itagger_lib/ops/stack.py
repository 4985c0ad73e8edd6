"""What a group stack's backup holds beyond the workbench: the hub's database and the users' homes.

:func:`itagger_lib.ops.backup.backup` writes the workbench (database dump and store files).
In the compose stack's ``backup`` service two settings add the rest of what a lab would lose:

``ITAGGER_HUB_DB``
    the hub's SQLite database (accounts, approvals, groups, tokens): copied with SQLite's
    online backup API, so the running hub need not stop; ``hub/jupyterhub.sqlite``.
``ITAGGER_HOME_VOLUMES``
    a Docker volume name prefix (``itagger-home-``): every user's home volume is read through
    the Docker API, without starting anything, into ``homes/<volume>.tar``.

Every file goes into the same ``manifest.json`` with its SHA-256, so :func:`verify` checks
them all before a restore touches anything. Restoring the hub database needs the hub
stopped (``docker compose stop hub``); a home volume still mounted by a running server is
refused with a message saying so.

:func:`run_schedule` is the ``backup`` service's loop: one backup a day at a set UTC time
into ``<folder>/auto-<UTC time>``, keeping the newest ``keep`` of those (folders of other
names, such as manual backups, are never removed).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import shutil
import sqlite3
import tarfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from itagger_lib.errors import ConfigError, OperationsError

HUB_DB_FILE = "hub/jupyterhub.sqlite"
HOMES_DIR = "homes"
AUTO_PREFIX = "auto-"
HEARTBEAT = Path(os.environ.get("ITAGGER_BACKUP_HEARTBEAT", "/tmp/itagger-backup-schedule.json"))
_VOLUME_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class StackParts:
    """Which parts beyond the workbench a backup holds (from the environment of the service)."""

    hub_db: Path | None = None
    home_volume_prefix: str | None = None
    home_image: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StackParts:
        env = os.environ if env is None else env
        prefix = env.get("ITAGGER_HOME_VOLUMES") or None
        image = env.get("ITAGGER_SINGLEUSER_IMAGE") or None
        if prefix and not image:
            raise ConfigError(
                "ITAGGER_HOME_VOLUMES is set but ITAGGER_SINGLEUSER_IMAGE is not: the home "
                "volumes are read through a container of the user image"
            )
        return cls(
            hub_db=Path(env["ITAGGER_HUB_DB"]) if env.get("ITAGGER_HUB_DB") else None,
            home_volume_prefix=prefix,
            home_image=image,
        )

    def writers(self) -> list[Callable[[Path], dict[str, Any]]]:
        """Functions that write these parts into a backup folder (for ``backup(extras=...)``)."""
        out: list[Callable[[Path], dict[str, Any]]] = []
        if self.hub_db is not None:
            hub_db = self.hub_db
            out.append(lambda dest: {"hub_db": backup_hub_db(hub_db, dest)})
        if self.home_volume_prefix and self.home_image:
            prefix, image = self.home_volume_prefix, self.home_image
            out.append(lambda dest: {"homes": backup_home_volumes(prefix, image, dest)})
        return out


# ---- the hub's database ----------------------------------------------------------------------
def backup_hub_db(hub_db: Path, dest: Path) -> str:
    """Copy the hub's SQLite database into ``dest/hub/`` (consistent while the hub runs)."""
    if not hub_db.is_file():
        raise OperationsError(
            f"hub database {hub_db} not found; set ITAGGER_HUB_DB to the hub's jupyterhub.sqlite"
        )
    out = dest / HUB_DB_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    _sqlite_copy(hub_db, out)
    return HUB_DB_FILE


def restore_hub_db(src: Path, hub_db: Path) -> None:
    """Replace the hub's database with the backup's copy (stop the hub first)."""
    tmp = hub_db.with_name(hub_db.name + ".restoring")
    tmp.unlink(missing_ok=True)
    _sqlite_copy(src / HUB_DB_FILE, tmp)
    for stale in (hub_db.with_name(hub_db.name + "-wal"), hub_db.with_name(hub_db.name + "-shm")):
        stale.unlink(missing_ok=True)
    os.replace(tmp, hub_db)


def _sqlite_copy(source: Path, target: Path) -> None:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


# ---- users' home volumes ---------------------------------------------------------------------
def _docker() -> Any:
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - installed with the hub extra
        raise OperationsError("home volumes need the docker package (pip install docker)") from exc
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        raise OperationsError(
            f"cannot reach the Docker engine to read home volumes ({type(exc).__name__}); mount "
            "the docker socket and add its group (ITAGGER_DOCKER_GID), or unset ITAGGER_HOME_VOLUMES"
        ) from exc
    return client


def _volume_container(client: Any, image: str, volume: str, *, read_only: bool) -> Any:
    from docker.types import Mount

    return client.containers.create(
        image,
        command=["true"],
        entrypoint=[],
        network_disabled=True,
        labels={"org.itagger.role": "backup-helper"},
        mounts=[
            Mount("/home/jovyan", volume, type="volume", read_only=read_only, no_copy=True),
        ],
    )


def backup_home_volumes(prefix: str, image: str, dest: Path) -> list[str]:
    """Write every volume named ``prefix*`` as ``dest/homes/<volume>.tar``; the volume names."""
    client = _docker()
    names = sorted(v.name for v in client.volumes.list() if v.name.startswith(prefix))
    (dest / HOMES_DIR).mkdir(parents=True, exist_ok=True)
    for name in names:
        helper = _volume_container(client, image, name, read_only=True)
        try:
            stream, _ = helper.get_archive("/home/jovyan")
            with open(dest / HOMES_DIR / f"{name}.tar", "wb") as out:
                for chunk in stream:
                    out.write(chunk)
        finally:
            helper.remove(force=True)
    return names


def restore_home_volumes(src: Path, names: Iterable[str], image: str) -> None:
    """Recreate each home volume from ``src/homes/<volume>.tar`` (its servers must be stopped)."""
    client = _docker()
    import docker.errors

    for name in names:
        if not _VOLUME_NAME.fullmatch(name):
            raise OperationsError(f"backup {src}: {name!r} is not a Docker volume name; not restoring it")
        try:
            client.volumes.get(name).remove()
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            raise OperationsError(
                f"home volume {name} is in use; stop that user's server (hub admin page) and retry"
            ) from exc
        client.volumes.create(name)
        helper = _volume_container(client, image, name, read_only=False)
        try:
            data = (src / HOMES_DIR / f"{name}.tar").read_bytes()
            _check_home_archive(data, name)
            helper.put_archive("/home", data)
        finally:
            helper.remove(force=True)


def check_home_archives(src: Path, names: Iterable[str]) -> None:
    """Refuse, before anything is touched, a backup whose home archives could escape their home."""
    for name in names:
        if not _VOLUME_NAME.fullmatch(name):
            raise OperationsError(f"backup {src}: {name!r} is not a Docker volume name; not restoring it")
        _check_home_archive((src / HOMES_DIR / f"{name}.tar").read_bytes(), name)


def _check_home_archive(data: bytes, name: str) -> None:
    """Refuse an archive with a member outside ``jovyan/``, a device or FIFO, a hard link, or a
    symbolic link that points outside the home (absolute, or climbing out with ``..``)."""
    try:
        tar = tarfile.open(fileobj=io.BytesIO(data))  # noqa: SIM115 - closed by the with below
    except tarfile.TarError as exc:
        raise OperationsError(f"home archive {name} is not a tar archive ({exc})") from exc
    with tar:
        for member in tar.getmembers():
            path = member.name
            parts = PurePosixPath(path).parts
            if path.startswith("/") or ".." in parts or not parts or parts[0] != "jovyan":
                raise OperationsError(f"home archive {name}: member {path!r} lies outside the home")
            if member.isdev() or member.islnk():
                raise OperationsError(f"home archive {name}: member {path!r} is a device, FIFO or hard link")
            if member.issym() and not _inside_home(parts[:-1], member.linkname):
                raise OperationsError(
                    f"home archive {name}: link {path!r} points outside the home ({member.linkname!r})"
                )


def _inside_home(folder: tuple[str, ...], target: str) -> bool:
    if target.startswith("/"):
        return False
    depth = list(folder)
    for part in PurePosixPath(target).parts:
        if part == "..":
            if len(depth) <= 1:  # above jovyan/
                return False
            depth.pop()
        elif part != ".":
            depth.append(part)
    return True


# ---- the daily schedule ----------------------------------------------------------------------
def parse_time_of_day(text: str) -> dt.time:
    """``"02:30"`` -> 02:30 UTC; a clear error naming the setting otherwise."""
    m = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", text.strip())
    if not m:
        raise ConfigError(f"ITAGGER_BACKUP_AT={text!r} is not a time of day; write HH:MM (UTC), e.g. 02:30")
    return dt.time(int(m.group(1)), int(m.group(2)), tzinfo=dt.UTC)


def next_run(now: dt.datetime, at: dt.time) -> dt.datetime:
    """The first moment at ``at`` (UTC) strictly after ``now``."""
    today = dt.datetime.combine(now.astimezone(dt.UTC).date(), at)
    return today if today > now else today + dt.timedelta(days=1)


def auto_name(when: dt.datetime) -> str:
    return AUTO_PREFIX + when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H%MZ")


def to_prune(names: Iterable[str], keep: int) -> list[str]:
    """The scheduled backups (``auto-…``) beyond the newest ``keep``; other names are kept."""
    auto = sorted(n for n in names if n.startswith(AUTO_PREFIX))
    return auto[: max(len(auto) - keep, 0)]


def write_heartbeat(state: Mapping[str, Any]) -> None:
    HEARTBEAT.write_text(json.dumps({**state, "heartbeat": time.time()}))


def schedule_health(max_silence: float = 3600.0) -> str | None:
    """Why the schedule is unhealthy (no heartbeat, or the last backup failed), else None."""
    try:
        state = json.loads(HEARTBEAT.read_text())
    except (OSError, ValueError):
        return f"no heartbeat in {HEARTBEAT}: the backup schedule is not running"
    if time.time() - float(state.get("heartbeat", 0)) > max_silence:
        return f"the backup schedule has been silent for more than {max_silence:.0f} s"
    if state.get("last_error"):
        return f"the last scheduled backup failed: {state['last_error']}"
    return None


def run_schedule(
    folder: Path,
    at: dt.time,
    keep: int,
    make_backup: Callable[[Path], object],
    *,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] = print,
    runs: int | None = None,
) -> None:
    """Back up into ``folder/auto-<time>`` every day at ``at``; keep the newest ``keep``.

    ``runs`` stops after that many backups (tests); the service runs for ever. A failed
    backup is logged and reported by the healthcheck; the next day's run goes ahead.
    """
    if keep < 1:
        raise ConfigError(f"ITAGGER_BACKUP_KEEP={keep}: keep at least 1 backup")
    folder.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {"folder": str(folder), "last_error": None, "last_backup": None}
    done = 0
    while runs is None or done < runs:
        due = next_run(clock(), at)
        state["next"] = due.isoformat()
        log(f"backup: next at {due.isoformat()} into {folder}")
        while (wait := (due - clock()).total_seconds()) > 0:
            write_heartbeat(state)
            sleep(min(wait, 60.0))
        dest = folder / auto_name(due)
        try:
            make_backup(dest)
            state.update(last_backup=str(dest), last_error=None)
            log(f"backup: wrote {dest}")
            for name in to_prune((p.name for p in folder.iterdir() if p.is_dir()), keep):
                shutil.rmtree(folder / name)
                log(f"backup: removed {folder / name} (keeping the newest {keep})")
        except Exception as exc:  # recorded and reported by the healthcheck; tomorrow runs again
            state["last_error"] = f"{dest}: {exc}"
            log(f"backup: FAILED {dest}: {exc}")
        write_heartbeat(state)
        done += 1
