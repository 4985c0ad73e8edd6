"""In a real browser: 02_Tag.ipynb rates 10 images with the keyboard only (no hovering: the
workbench takes the focus when it appears), goes back and changes one, survives a page
reload, and the database holds exactly the expected ratings (in order, with dwell > 0).
Screenshots go to ``.test-artifacts/screenshots/``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.browser._lab import CHROMIUM, chromium, jupyter_lab, run_all_cells
from tests.fakes.codebooks import people_codebook

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / ".test-artifacts" / "screenshots"
CODEBOOK = people_codebook("browsertest")
IGNORED_CONSOLE = ("favicon", "Failed to load resource: the server responded with a status of 404")

pytestmark = [pytest.mark.browser, pytest.mark.notebooks]


def _open_and_run(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
    page.keyboard.press("Escape")
    run_all_cells(page)
    page.wait_for_selector(".itagger-tagging .itagger-answer", timeout=60_000)


def _press(page, key: str, expect: str) -> None:
    page.keyboard.press(key)
    _progress_is(page, expect)


def _progress_is(page, text: str) -> None:
    page.wait_for_function(
        "t => { const e = document.querySelector('.itagger-tagging .itagger-progress');"
        " return e && e.innerText.startsWith(t); }",
        arg=text,
        timeout=30_000,
    )


def test_tagging_notebook_keyboard_only(tmp_path: Path, sample_dir: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from itagger_lib import Workspace
    from itagger_lib.db.models import Rating
    from itagger_lib.ratings.studies import create_study

    root = tmp_path / "lab"
    root.mkdir()
    shutil.copy(REPO / "notebooks" / "02_Tag.ipynb", root / "02_Tag.ipynb")
    home = root / "workspace"
    url = f"sqlite:///{home / 'itagger.db'}"
    ws = Workspace(home=home, database_url=url, store=home / "store", user="admin")
    ws.ingest(sample_dir, progress=False)
    ws.load_codebook(CODEBOOK)
    create_study(ws, "browser", raters_per_image=1, seed=42)
    env = {
        "ITAGGER_HOME": str(home),
        "ITAGGER_DATABASE_URL": url,
        "ITAGGER_STORE": str(home / "store"),
        "ITAGGER_USER": "browser-rater",
    }
    expected = {n: n % 2 for n in range(1, 11)}  # position -> value
    errors: list[str] = []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with jupyter_lab(root, env) as server, chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        try:
            _open_and_run(page, server.notebook_url("02_Tag.ipynb"))
            _progress_is(page, "Image 1 of 12 · last question")
            page.screenshot(path=str(SCREENSHOTS / "02_Tag-start.png"), full_page=True)
            for n in range(1, 11):
                page.wait_for_timeout(150)  # a rater looks at the image for a moment
                _press(page, str(expected[n]), f"Image {n + 1} of 12")
            _press(page, "ArrowLeft", "Image 10 of 12")  # back to image 10
            expected[10] = 1 - expected[10]
            _press(page, str(expected[10]), "Image 11 of 12")  # change the answer, move on
            page.screenshot(path=str(SCREENSHOTS / "02_Tag-after-10.png"), full_page=True)
            page.reload()
            _open_and_run(page, server.notebook_url("02_Tag.ipynb"))
            _progress_is(page, "Image 11 of 12")
            expected[11] = 1
            _press(page, "1", "Image 12 of 12")
            page.screenshot(path=str(SCREENSHOTS / "02_Tag-resumed.png"), full_page=True)
            assert page.get_by_text("Error displaying widget").count() == 0
            # the keys went to the workbench, not to JupyterLab (no cell turned into a heading)
            assert page.locator(".jp-Notebook .jp-MarkdownCell").count() == 1
            assert page.locator(".jp-Notebook .jp-CodeCell").count() == 2
        except Exception:
            page.screenshot(path=str(SCREENSHOTS / "02_Tag-FAILED.png"), full_page=True)
            raise
        finally:
            page.close()
    with ws.engine.connect() as c:
        rows = c.execute(sa.select(Rating).order_by(Rating.position)).mappings().all()
    ws.close()
    assert [(r["position"], int(r["value"])) for r in rows] == sorted(expected.items())
    assert all(r["rater"] == "browser-rater" and r["attribute"] == "people" for r in rows)
    assert all(r["dwell_ms"] > 0 and r["mode"] == "blind" and r["source"] == "human" for r in rows)
    assert [r["position"] for r in rows if r["updated_at"] is not None] == [10]
    assert len({r["image_id"] for r in rows}) == 11
    assert len({r["session_id"] for r in rows}) == 2  # before and after the reload
    real = [e for e in errors if not any(i in e for i in IGNORED_CONSOLE)]
    assert not real, f"browser console errors: {real}"
