"""In a real browser, JupyterLab opens each cockpit notebook, runs it, and its widgets render
with no errors in the browser console; a screenshot of each is saved for the CI log
(``.test-artifacts/screenshots/``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.browser._lab import CHROMIUM, chromium, jupyter_lab, run_all_cells

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / ".test-artifacts" / "screenshots"
COCKPIT = ["00_Admin.ipynb", "01_Upload.ipynb", "03_Review.ipynb", "04_Explore.ipynb"]
# Widgets each notebook must show, as CSS selectors of ipywidgets' DOM.
EXPECTED = {
    "00_Admin.ipynb": [".widget-toggle-button", ".widget-upload", ".widget-button"],
    "01_Upload.ipynb": [".widget-upload", ".widget-hprogress"],
}
# Console noise from JupyterLab itself that says nothing about our widgets.
IGNORED_CONSOLE = ("favicon", "Failed to load resource: the server responded with a status of 404")

pytestmark = [pytest.mark.browser, pytest.mark.notebooks]


@pytest.fixture(scope="module")
def lab(tmp_path_factory, sample_dir):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from itagger_lib import Workspace

    root = tmp_path_factory.mktemp("lab")
    for name in COCKPIT:
        shutil.copy(REPO / "notebooks" / name, root / name)  # runs never touch the committed copies
    home = root / "workspace"
    ws = Workspace(home=home, database_url=f"sqlite:///{home / 'itagger.db'}", store=home / "store")
    ws.ingest([str(p) for p in sorted(sample_dir.glob("*.jpg"))[:3]], progress=False)
    ws.close()
    env = {
        "ITAGGER_HOME": str(home),
        "ITAGGER_DATABASE_URL": f"sqlite:///{home / 'itagger.db'}",
        "ITAGGER_STORE": str(home / "store"),
        "ITAGGER_USER": "browser-test",
    }
    with jupyter_lab(root, env) as server, chromium() as browser:
        yield server, browser


@pytest.mark.parametrize("name", COCKPIT)
def test_cockpit_notebook_runs_in_jupyterlab(lab, name) -> None:
    server, browser = lab
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    try:
        page.goto(server.notebook_url(name))
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
        page.keyboard.press("Escape")
        run_all_cells(page)
        page.wait_for_timeout(1000)
        for selector in EXPECTED.get(name, []):
            assert page.locator(f".jp-OutputArea {selector}").count() > 0, f"{name}: no {selector} rendered"
        if name == "00_Admin.ipynb":  # a widget callback through the real comm channel
            page.locator("button.widget-button[title='Run smoke checks']").click()
            page.wait_for_selector(".itagger-smoke", timeout=60_000)
            assert page.locator(".itagger-smoke").get_by_text("FAIL", exact=True).count() == 0
            assert page.locator(".itagger-smoke").get_by_text("PASS", exact=True).count() >= 1
        tracebacks = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        text = "\n".join(tracebacks.all_inner_texts())
        assert "Traceback" not in text and "Error" not in text, f"{name} printed an error:\n{text}"
        assert page.get_by_text("Error displaying widget").count() == 0
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{Path(name).stem}.png"), full_page=True)
        real = [e for e in errors if not any(i in e for i in IGNORED_CONSOLE)]
        assert not real, f"{name}: browser console errors: {real}"
    except Exception:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{Path(name).stem}-FAILED.png"), full_page=True)
        raise
    finally:
        page.close()
