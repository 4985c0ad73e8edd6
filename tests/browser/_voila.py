"""Voilà serving the tagging app on loopback, as ``itagger tag`` starts it, for browser tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.browser._lab import _free_port


@dataclass
class App:
    url: str
    log: Path


@contextmanager
def tagging_app(folder: Path, env: dict[str, str], timeout: float = 90) -> Iterator[App]:
    """``itagger tag --no-browser`` on a free port, its kernels seeing ``env``."""
    port = _free_port()
    log_path = folder / "itagger-tag.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "itagger_lib.cli", "tag", "--no-browser", "--port", str(port)],
        cwd=folder,
        env={**os.environ, **env, "JUPYTER_CONFIG_DIR": str(folder / ".jupyter")},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"itagger tag did not start; see {log_path}") from None
                time.sleep(0.3)
        yield App(url, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
