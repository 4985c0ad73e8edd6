"""Regenerate the screenshots of docs/notebooks.md: ``make screenshots``.

Builds a throwaway workspace (the generated sample images, science, the shipped architecture
codebook, a study), serves the tagging app with ``itagger tag`` and the cockpit notebooks with
JupyterLab, and photographs each screen in headless Chromium (``/usr/bin/chromium``) into
``docs/screenshots/``: the app at 1366×768 and 1920×1080, its end screen, and the admin
cockpit, the explorer and 02_Tag.ipynb at 1366×768.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "screenshots"
sys.path.insert(0, str(REPO))

from tests.browser._lab import chromium, jupyter_lab, run_all_cells  # noqa: E402 (after the path insert)
from tests.browser._voila import tagging_app  # noqa: E402
from tests.fakes.codebooks import screen_codebook  # noqa: E402


def _workspace(root: Path) -> dict[str, str]:
    from itagger_lib import Workspace
    from itagger_lib.ratings.studies import create_study
    from itagger_lib.samples import write_samples

    home = root / "workspace"
    url = f"sqlite:///{home / 'itagger.db'}"
    write_samples(root / "samples", n=12)
    with Workspace(home=home, database_url=url, store=home / "store", user="admin") as ws:
        ws.ingest(root / "samples", progress=False, collection="campus")
        ws.run_science(progress=False)
        ws.load_codebook(screen_codebook("short"))
        create_study(ws, "short", raters_per_image=1, seed=1, images=ws.images().index.tolist()[:1])
        ws.load_codebook(None)
        create_study(ws, "pilot", raters_per_image=2, seed=3)  # the newest: what 02_Tag shows
    return {"ITAGGER_HOME": str(home), "ITAGGER_DATABASE_URL": url, "ITAGGER_STORE": str(home / "store")}


def _app(browser, url: str, width: int, height: int, name: str, keys: str = "") -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(url)
    page.wait_for_selector(".itagger-tagging .itagger-answer", timeout=120_000)
    for key in keys:
        page.wait_for_timeout(300)
        page.keyboard.press(key)
    page.wait_for_timeout(800)
    page.screenshot(path=str(OUT / name))
    page.close()


def _notebook(browser, lab, name: str, shot: str, scroll_to: str | None = None) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.goto(lab.notebook_url(name))
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
    page.evaluate("() => window.jupyterapp.commands.execute('application:toggle-left-area')")
    page.keyboard.press("Escape")
    run_all_cells(page)
    page.wait_for_timeout(1500)
    if scroll_to:
        page.locator(scroll_to).first.scroll_into_view_if_needed()
        page.wait_for_timeout(300)
    page.screenshot(path=str(OUT / shot))
    page.close()


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="itagger-shots-") as folder:
        root = Path(folder)
        env = _workspace(root)
        with chromium() as browser:
            with tagging_app(root, {**env, "ITAGGER_USER": "student", "ITAGGER_TAG_STUDY": "pilot"}) as app:
                _app(browser, app.url, 1366, 768, "app-1366x768.png", keys="5")
                _app(browser, app.url, 1920, 1080, "app-1920x1080.png")
            with tagging_app(root, {**env, "ITAGGER_USER": "done", "ITAGGER_TAG_STUDY": "short"}) as app:
                _app(browser, app.url, 1366, 768, "app-end.png", keys="621")
            lab_root = root / "lab"
            lab_root.mkdir()
            for name in ("00_Admin.ipynb", "02_Tag.ipynb", "04_Explore.ipynb"):
                shutil.copy(REPO / "notebooks" / name, lab_root / name)
            with jupyter_lab(lab_root, {**env, "ITAGGER_USER": "researcher"}) as lab:
                _notebook(browser, lab, "00_Admin.ipynb", "admin-1366x768.png", scroll_to=".itagger-runs")
                _notebook(
                    browser, lab, "04_Explore.ipynb", "explorer-1366x768.png", scroll_to=".itagger-file-name"
                )
                _notebook(browser, lab, "02_Tag.ipynb", "lab-tag-1366x768.png", scroll_to=".itagger-tagging")
    for path in sorted(OUT.glob("*.png")):
        print(path.relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
