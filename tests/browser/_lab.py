"""A minimal JupyterLab + headless Chromium harness for the cockpit browser test.

Starts ``jupyter lab`` on a free loopback port over a folder, with a token, and opens pages
in the system Chromium through Playwright (never ``playwright install``).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class Lab:
    url: str
    token: str
    root: Path

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def jupyter_lab(root: Path, env: dict[str, str], timeout: float = 90) -> Iterator[Lab]:
    """A running JupyterLab server over ``root`` whose kernels see ``env``."""
    port, token = _free_port(), secrets.token_hex(16)
    # no "get notified about Jupyter news?" toast over the page (and its screenshots)
    notification = root / ".lab-settings" / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True, exist_ok=True)
    (notification / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}'
    )
    log = open(root / "jupyter-lab.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            f"--port={port}",
            "--ip=127.0.0.1",
            f"--ServerApp.root_dir={root}",
            f"--IdentityProvider.token={token}",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--ServerApp.open_browser=False",
            "--allow-root",
            "--LabApp.expose_app_in_browser=True",
        ],
        cwd=root,
        env={
            **os.environ,
            **env,
            "JUPYTER_CONFIG_DIR": str(root / ".jupyter"),
            "JUPYTERLAB_SETTINGS_DIR": str(root / ".lab-settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(root / ".lab-workspaces"),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"jupyter lab did not start; see {root / 'jupyter-lab.log'}") from None
                time.sleep(0.3)
        yield Lab(url, token, root)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


ALL_RAN = """() => {
    const prompts = [...document.querySelectorAll('.jp-InputPrompt')]
        .map(p => p.textContent).filter(t => t.includes('['));
    return prompts.length > 0 && prompts.every(t => /\\[\\d+\\]/.test(t));
}"""
KERNEL_READY = """async () => {
    const panel = window.jupyterapp.shell.currentWidget;
    await panel.context.ready;
    await panel.sessionContext.ready;
}"""
KERNEL_IDLE = """() => {
    const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel;
    return kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
}"""


def run_all_cells(page: Any, timeout_ms: int = 120_000) -> None:
    """Wait for the open notebook's kernel, run all its cells, wait until every cell ran.

    Uses JupyterLab's own command (the app is exposed as ``window.jupyterapp``), not menu
    clicks, so a slow kernel start cannot swallow the request.
    """
    page.wait_for_function(
        "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
        " && window.jupyterapp.shell.currentWidget.sessionContext",
        timeout=timeout_ms,
    )
    page.evaluate(KERNEL_READY)
    page.wait_for_function(KERNEL_IDLE, timeout=timeout_ms)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(ALL_RAN, timeout=timeout_ms)
    page.wait_for_function(KERNEL_IDLE, timeout=timeout_ms)


@contextmanager
def chromium() -> Iterator[object]:
    """A headless system Chromium browser (Playwright)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
