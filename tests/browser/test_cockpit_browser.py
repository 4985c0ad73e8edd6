"""In a real browser, JupyterLab opens each cockpit notebook, runs it, and its widgets render
with no errors in the browser console; a screenshot of each is saved for the CI log
(``.test-artifacts/screenshots/``). At 1366×768 and 1920×1080 no control of the admin
cockpit or the explorer sticks out of its output cell (from their bounding boxes)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.browser._lab import CHROMIUM, chromium, jupyter_lab, run_all_cells
from tests.browser._layout import overflowing_controls

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
    ws.run_science(progress=False)  # the explorer's filters and sort need metrics
    broken = root / "uploads"
    broken.mkdir()
    (broken / "broken_upload_with_a_long_file_name.jpg").write_bytes(b"not an image")
    ws.ingest(broken, progress=False)  # a run with a failure for the admin's runs table
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


@pytest.mark.parametrize("viewport", [(1366, 768), (1920, 1080)], ids=lambda v: f"{v[0]}x{v[1]}")
@pytest.mark.parametrize("name", ["00_Admin.ipynb", "04_Explore.ipynb"])
def test_cockpit_controls_fit_their_cell(lab, name, viewport) -> None:
    server, browser = lab
    width, height = viewport
    page = browser.new_page(viewport={"width": width, "height": height})
    try:
        page.goto(server.notebook_url(name))
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
        page.keyboard.press("Escape")
        run_all_cells(page)
        page.wait_for_selector(".jp-OutputArea .widget-button", timeout=60_000)
        page.wait_for_timeout(500)
        if name == "00_Admin.ipynb":  # the failures of a run, one click away
            page.get_by_role("button", name="failures of run").first.click()
            page.locator(".itagger-failures").wait_for(timeout=30_000)
            assert "broken_upload_with_a_long_file_name.jpg" in page.locator(".itagger-failures").inner_text()
        else:  # ranges start at the metric's observed values, not 0 to 0
            values = page.locator(".jp-OutputArea .widget-text input[type=number]").evaluate_all(
                "inputs => inputs.slice(0, 2).map(i => parseFloat(i.value))"
            )
            assert len(values) == 2 and values[0] < values[1], values
            assert page.locator(".jp-OutputArea .itagger-file-name").count() == 3
        bad = overflowing_controls(page)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{Path(name).stem}-{width}x{height}.png"), full_page=True)
        assert not bad, f"{name} at {width}×{height}: controls outside their cell: {bad}"
    except Exception:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        failed = SCREENSHOTS / f"{Path(name).stem}-{width}x{height}-FAILED.png"
        page.screenshot(path=str(failed), full_page=True)
        raise
    finally:
        page.close()
