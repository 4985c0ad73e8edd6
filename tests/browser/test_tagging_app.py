"""The tagging app (``itagger tag``: Voilà) in headless Chromium at 1366×768 and 1920×1080.

On every screen the image, the progress line, the question and every answer button (with
its anchor label) lie inside the viewport, from their bounding boxes; the image is large. A
rater who never touches the mouse completes a study and reaches the end screen, and the
database holds exactly the answers given. Keys work after clicks too, and a clicked button
cannot be pressed again with Space. Screenshots go to ``.test-artifacts/screenshots/``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.browser._lab import CHROMIUM, chromium
from tests.browser._layout import outside_viewport, screen_rects, shown_image_size
from tests.browser._voila import tagging_app
from tests.fakes.codebooks import screen_codebook

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / ".test-artifacts" / "screenshots"
IGNORED_CONSOLE = ("favicon", "Failed to load resource")  # Voilà's template asks a CDN for icons
N_IMAGES = 5
VIEWPORTS = [(1366, 768), (1920, 1080)]
PROGRESS = ".itagger-tagging .itagger-progress"
LEFT = ("3 questions left", "2 questions left", "last question")

pytestmark = [pytest.mark.browser, pytest.mark.notebooks]


@pytest.fixture(scope="module")
def study_home(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> dict[str, str]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from itagger_lib import Workspace
    from itagger_lib.ratings.studies import create_study

    home = tmp_path_factory.mktemp("app") / "workspace"
    url = f"sqlite:///{home / 'itagger.db'}"
    ws = Workspace(home=home, database_url=url, store=home / "store", user="admin")
    ws.ingest(sample_dir, progress=False)
    ws.load_codebook(screen_codebook())
    create_study(ws, "app", raters_per_image=3, seed=5, images=ws.images().index.tolist()[:N_IMAGES])
    ws.close()
    return {"ITAGGER_HOME": str(home), "ITAGGER_DATABASE_URL": url, "ITAGGER_STORE": str(home / "store")}


def _progress_is(page: Any, text: str) -> None:
    page.wait_for_function(
        "([s, t]) => { const e = document.querySelector(s); return e && e.innerText.startsWith(t); }",
        arg=[PROGRESS, text],
        timeout=30_000,
    )


def _assert_fits(page: Any, where: str) -> dict[str, Any]:
    layout = screen_rects(page)
    bad = outside_viewport(layout)
    assert not bad, f"{where}: outside the {layout['width']}×{layout['height']} viewport: {bad}"
    assert layout["scrollHeight"] <= layout["height"] and layout["scrollWidth"] <= layout["width"]
    return layout


def _open(browser: Any, url: str, width: int, height: int, errors: list[str]) -> Any:
    page = browser.new_page(viewport={"width": width, "height": height})
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.goto(url)
    page.wait_for_selector(".itagger-tagging .itagger-answer", timeout=90_000)
    return page


def _ratings(env: dict[str, str], rater: str) -> list[Any]:
    engine = sa.create_engine(env["ITAGGER_DATABASE_URL"])
    with engine.connect() as c:
        rows = c.execute(
            sa.text(
                "SELECT position, attribute, value, value_text, dwell_ms, session_id FROM ratings"
                " WHERE rater = :r ORDER BY id"
            ),
            {"r": rater},
        ).all()
    engine.dispose()
    return rows


@pytest.mark.parametrize(("width", "height"), VIEWPORTS, ids=lambda v: str(v))
def test_keyboard_only_rater_completes_a_study(
    study_home: dict[str, str], tmp_path: Path, width: int, height: int
) -> None:
    rater = f"keys-{width}"
    errors: list[str] = []
    answers = {"coherence": "6", "setting": "2", "people": "1"}
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with tagging_app(tmp_path, {**study_home, "ITAGGER_USER": rater}) as app, chromium() as browser:
        page = _open(browser, app.url, width, height, errors)
        try:
            for image in range(1, N_IMAGES + 1):
                for left, key in zip(LEFT, answers.values()):
                    _progress_is(page, f"Image {image} of {N_IMAGES} · {left}")
                    layout = _assert_fits(page, f"image {image}, {left}")
                    assert len(layout["rects"]["answer"]) in (7, 4, 2)
                    shown_w, shown_h = shown_image_size(layout["rects"]["image"][0])
                    assert shown_w >= 0.5 * width or shown_h >= 0.8 * height, (shown_w, shown_h)
                    if image == 1:
                        page.screenshot(path=str(SCREENSHOTS / f"app-{width}x{height}-{left[0]}.png"))
                    page.wait_for_timeout(60)  # a rater looks for a moment
                    page.keyboard.press(key)
                    if image == 1 and left.startswith("3"):
                        page.locator(".itagger-saved").get_by_text("✓ Saved").wait_for(timeout=30_000)
            end = page.get_by_text("All done — thank you!")
            end.wait_for(timeout=30_000)
            box = end.bounding_box()
            assert box and box["y"] >= 0 and box["y"] + box["height"] <= height
            page.screenshot(path=str(SCREENSHOTS / f"app-{width}x{height}-end.png"))
        except Exception:
            page.screenshot(path=str(SCREENSHOTS / f"app-{width}x{height}-FAILED.png"))
            raise
        finally:
            page.close()
    rows = _ratings(study_home, rater)
    assert len(rows) == 3 * N_IMAGES
    assert [r.position for r in rows] == [p for p in range(1, N_IMAGES + 1) for _ in range(3)]
    assert {(r.attribute, r.value, r.value_text) for r in rows} == {
        ("coherence", 6.0, None),
        ("setting", 1.0, "urban"),
        ("people", 1.0, None),
    }
    assert all(r.dwell_ms > 0 for r in rows) and len({r.session_id for r in rows}) == 1
    real = [e for e in errors if not any(i in e for i in IGNORED_CONSOLE)]
    assert not real, f"browser console errors: {real}"


def test_keys_work_after_clicks(study_home: dict[str, str], tmp_path: Path) -> None:
    rater = "clicker"
    errors: list[str] = []
    with tagging_app(tmp_path, {**study_home, "ITAGGER_USER": rater}) as app, chromium() as browser:
        page = _open(browser, app.url, 1366, 768, errors)
        try:
            _progress_is(page, f"Image 1 of {N_IMAGES} · 3 questions left")
            page.click(".itagger-figure img")  # a click on the image ...
            page.keyboard.press("3")  # ... and the keys still answer
            _progress_is(page, f"Image 1 of {N_IMAGES} · 2 questions left")
            page.get_by_role("button", name=re.compile("Back")).click()
            _progress_is(page, f"Image 1 of {N_IMAGES} · 3 questions left")
            page.keyboard.press(" ")  # Space must not press the Back button again
            page.wait_for_timeout(500)
            _progress_is(page, f"Image 1 of {N_IMAGES} · 3 questions left")
            page.keyboard.press("5")  # changes the answer, moves on
            _progress_is(page, f"Image 1 of {N_IMAGES} · 2 questions left")
            page.mouse.click(5, 5)  # a click on nothing at all
            page.get_by_role("button", name=re.compile("Mixed")).click()  # an answer by mouse
            _progress_is(page, f"Image 1 of {N_IMAGES} · last question")
            page.keyboard.press("0")
            _progress_is(page, f"Image 2 of {N_IMAGES} · 3 questions left")
        except Exception:
            page.screenshot(path=str(SCREENSHOTS / "app-clicks-FAILED.png"))
            raise
        finally:
            page.close()
    rows = _ratings(study_home, rater)
    assert [(r.attribute, r.value, r.value_text) for r in rows] == [
        ("coherence", 5.0, None),
        ("setting", 3.0, "mixed"),
        ("people", 0.0, None),
    ]
    real = [e for e in errors if not any(i in e for i in IGNORED_CONSOLE)]
    assert not real, f"browser console errors: {real}"
