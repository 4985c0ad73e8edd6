"""The content-addressed image store: ``<root>/ab/cd/<sha256>.<ext>``.

Files are written atomically (copy to a temp file, fsync, rename, fsync the folder), never
overwritten, and deduplicated by hash. Names and source paths live in the database only.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

from itagger_lib.config import store_readonly
from itagger_lib.errors import StoreError, StoreReadOnlyError

_TMP = ".tmp"
_HASH_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (streams; releases the GIL while hashing)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _sync_filesystem(folder: Path) -> None:
    """Flush the filesystem holding ``folder`` (Linux ``syncfs``; elsewhere ``sync``)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(folder, os.O_RDONLY)
    except (OSError, AttributeError):
        os.sync()
        return
    try:
        if getattr(libc, "syncfs", None) is None or libc.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ImageStore:
    """A folder of image files named by the SHA-256 of their bytes.

    ``readonly=True`` (default: the ``ITAGGER_STORE_READONLY`` setting) refuses every write
    with :class:`StoreReadOnlyError`; reads keep working.
    """

    def __init__(self, root: str | Path, readonly: bool | None = None) -> None:
        self.root = Path(root)
        self.readonly = store_readonly() if readonly is None else readonly
        self._made: set[Path] = set()

    def __repr__(self) -> str:
        return f"ImageStore({str(self.root)!r}{', readonly=True' if self.readonly else ''})"

    def check_writable(self) -> None:
        """Raise :class:`StoreReadOnlyError` when this store is read-only."""
        if self.readonly:
            raise StoreReadOnlyError(
                f"the image store at {self.root} is read-only for you (ITAGGER_STORE_READONLY=1, "
                "set by the hub for taggers); an admin or researcher must do the upload"
            )

    @staticmethod
    def relpath(sha256: str, ext: str) -> str:
        return f"{sha256[:2]}/{sha256[2:4]}/{sha256}.{ext}"

    def path_for(self, sha256: str, ext: str) -> Path:
        """Where the file with this hash and extension lives (whether or not it exists)."""
        return self.root / self.relpath(sha256, ext)

    def contains(self, sha256: str, ext: str) -> bool:
        return self.path_for(sha256, ext).is_file()

    def _unwritable(self, exc: OSError) -> StoreError:
        return StoreError(
            f"the image store at {self.root} cannot be written ({exc.strerror or exc}: "
            f"{exc.filename or self.root}); check that ITAGGER_STORE is mounted read-write and has "
            "free space, then run the step again"
        )

    def _tmp_dir(self) -> Path:
        folder = self.root / _TMP
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._unwritable(exc) from exc
        return folder

    def stage(self, source: str | Path, sha256: str, ext: str) -> Path | None:
        """Copy ``source`` to a temp file in the store; ``None`` if the hash is already stored.

        Staged files become visible only through :meth:`commit`, which makes them durable
        first; this lets a batch share one filesystem sync instead of one per file.
        """
        self.check_writable()
        if self.path_for(sha256, ext).is_file():
            return None
        tmp = self._tmp_dir() / f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}.part"
        try:
            shutil.copyfile(source, tmp)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StoreError(
                f"cannot write {source} into the image store at {self.root}: "
                f"{exc.strerror or exc}; check free space and permissions of ITAGGER_STORE"
            ) from exc
        return tmp

    def commit(self, staged: list[tuple[Path, str, str]], *, replace: bool = False) -> None:
        """Make staged ``(temp, sha256, ext)`` files durable, then rename them into place.

        Order matters for crash safety: data is synced before any rename, and the renames
        are synced before the caller records rows, so a row never points at a missing or
        partial file. A name that exists already (another writer, same bytes) is kept, unless
        ``replace`` (a restore, whose staged bytes are verified, repairs a damaged file).
        """
        self.check_writable()
        if not staged:
            return
        try:
            self._commit(staged, replace)
        except OSError as exc:
            raise self._unwritable(exc) from exc

    def _commit(self, staged: list[tuple[Path, str, str]], replace: bool) -> None:
        _sync_filesystem(self.root)
        for tmp, sha256, ext in staged:
            final = self.path_for(sha256, ext)
            if final.exists() and not replace:
                tmp.unlink(missing_ok=True)
                continue
            if final.parent not in self._made:
                final.parent.mkdir(parents=True, exist_ok=True)
                self._made.add(final.parent)
            try:
                os.replace(tmp, final)
            except FileNotFoundError:  # the folder was removed since this store made it
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, final)
        _sync_filesystem(self.root)

    def put(self, source: str | Path, sha256: str, ext: str) -> bool:
        """Copy one file into the store under its hash; ``False`` if it was already there."""
        self.check_writable()
        tmp = self.stage(source, sha256, ext)
        if tmp is None:
            return False
        self.commit([(tmp, sha256, ext)])
        return True

    def clean_temp(self) -> int:
        """Remove temp files left by writers on this host that are no longer running."""
        self.check_writable()
        folder = self.root / _TMP
        if not folder.is_dir():
            return 0
        host = socket.gethostname()
        removed = 0
        for tmp in folder.glob("*.part"):
            parts = tmp.name.rsplit("-", 2)
            if len(parts) == 3 and parts[0] == host and parts[1].isdigit() and _pid_alive(int(parts[1])):
                continue
            try:
                tmp.unlink(missing_ok=True)
            except OSError as exc:
                raise self._unwritable(exc) from exc
            removed += 1
        return removed

    def iter_files(self) -> Iterator[tuple[str, str, Path]]:
        """Every stored file as ``(sha256, ext, path)``; temp files are skipped."""
        if not self.root.is_dir():
            return
        for first in sorted(p for p in self.root.iterdir() if p.is_dir() and p.name != _TMP):
            for second in sorted(p for p in first.iterdir() if p.is_dir()):
                for path in sorted(second.iterdir()):
                    sha, _, ext = path.name.partition(".")
                    if len(sha) == 64 and path.is_file():
                        yield sha, ext, path
