"""The content-addressed image store: ``<root>/ab/cd/<sha256>.<ext>``.

Files are written atomically (copy to a temp file, fsync, rename, fsync the folder), never
overwritten, and deduplicated by hash. Names and source paths live in the database only.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

from itagger_lib.errors import StoreError

_TMP = ".tmp"
_HASH_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (streams; releases the GIL while hashing)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
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
    """A folder of image files named by the SHA-256 of their bytes."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"ImageStore({str(self.root)!r})"

    @staticmethod
    def relpath(sha256: str, ext: str) -> str:
        return f"{sha256[:2]}/{sha256[2:4]}/{sha256}.{ext}"

    def path_for(self, sha256: str, ext: str) -> Path:
        """Where the file with this hash and extension lives (whether or not it exists)."""
        return self.root / self.relpath(sha256, ext)

    def contains(self, sha256: str, ext: str) -> bool:
        return self.path_for(sha256, ext).is_file()

    def _tmp_dir(self) -> Path:
        folder = self.root / _TMP
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def put(self, source: str | Path, sha256: str, ext: str) -> bool:
        """Copy ``source`` into the store under its hash; ``False`` if it was already there.

        The copy goes to a temp file that is fsynced and renamed into place, so a reader
        (or a crash) never sees a partial file under a final name.
        """
        final = self.path_for(sha256, ext)
        if final.is_file():
            return False
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._tmp_dir() / f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}.part"
            with open(source, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, _HASH_CHUNK)
                dst.flush()
                os.fsync(dst.fileno())
            if final.exists():  # another writer won the race: same bytes, keep theirs
                tmp.unlink(missing_ok=True)
                return False
            os.replace(tmp, final)
            _fsync_dir(final.parent)
        except OSError as exc:
            raise StoreError(
                f"cannot write {source} into the image store at {self.root}: {exc.strerror or exc}; "
                "check free space and permissions of ITAGGER_STORE"
            ) from exc
        return True

    def clean_temp(self) -> int:
        """Remove temp files left by writers on this host that are no longer running."""
        folder = self.root / _TMP
        if not folder.is_dir():
            return 0
        host = socket.gethostname()
        removed = 0
        for tmp in folder.glob("*.part"):
            parts = tmp.name.rsplit("-", 2)
            if len(parts) == 3 and parts[0] == host and parts[1].isdigit() and _pid_alive(int(parts[1])):
                continue
            tmp.unlink(missing_ok=True)
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
