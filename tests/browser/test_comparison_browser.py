"""The comparison screen of the tagging app (``itagger tag``: Voilà) in headless Chromium.

A pairwise study and a best–worst study, each completed with the keyboard only at 1366×768
(and the pairwise one at 1920×1080): on every screen the images of the trial, the progress
line, the question, the answer buttons and the saved state lie inside the viewport (from
their bounding boxes) and the images are large; the database then holds exactly the
choices pressed. Screenshots go to ``.test-artifacts/screenshots/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.browser._lab import CHROMIUM, chromium
from tests.browser._layout import outside_viewport, screen_rects, shown_image_size
from tests.browser._voila import tagging_app

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / ".test-artifacts" / "screenshots"
IGNORED_CONSOLE = ("favicon", "Failed to load resource")
N_IMAGES = 5
PARTS = {
    "image": ".itagger-compare .itagger-choice img",
    "progress": ".itagger-compare .itagger-progress",
    "question": ".itagger-compare .itagger-question-text",
    "answer": ".itagger-compare .itagger-answer",
    "saved": ".itagger-compare .itagger-saved",
}
PROGRESS = PARTS["progress"]

pytestmark = [pytest.mark.browser, pytest.mark.notebooks]


@pytest.fixture(scope="module")
def study_home(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> dict[str, str]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from itagger_lib import Workspace

    home = tmp_path_factory.mktemp("compare") / "workspace"
    url = f"sqlite:///{home / 'itagger.db'}"
    ws = Workspace(home=home, database_url=url, store=home / "store", user="admin")
    ws.ingest(sample_dir, progress=False)
    chosen = ws.images().index.tolist()[:N_IMAGES]
    common = {"raters_per_image": 1, "seed": 3, "images": chosen, "avoid_near_duplicates": False}
    ws.create_study(
        "pairs", design="pairwise", question="spaciousness", pairs_per_image=2, ties=True, **common
    )
    ws.create_study("sets", design="best_worst", question="spaciousness", trials_per_image=4, **common)
    ws.close()
    return {"ITAGGER_HOME": str(home), "ITAGGER_DATABASE_URL": url, "ITAGGER_STORE": str(home / "store")}


def _progress_is(page: Any, text: str) -> None:
    page.wait_for_function(
        "([s, t]) => { const e = document.querySelector(s); return e && e.innerText.startsWith(t); }",
        arg=[PROGRESS, text],
        timeout=30_000,
    )


def _assert_fits(page: Any, where: str, images: int) -> dict[str, Any]:
    layout = screen_rects(page, PARTS)
    bad = outside_viewport(layout)
    assert not bad, f"{where}: outside the {layout['width']}×{layout['height']} viewport: {bad}"
    assert layout["scrollHeight"] <= layout["height"] and layout["scrollWidth"] <= layout["width"]
    assert len(layout["rects"]["image"]) == images
    return layout


def _choices(env: dict[str, str], study: str, rater: str) -> list[Any]:
    engine = sa.create_engine(env["ITAGGER_DATABASE_URL"])
    with engine.connect() as c:
        rows = c.execute(
            sa.text(
                "SELECT t.position, t.items, c.best_image_id, c.worst_image_id, c.tie, c.dwell_ms"
                " FROM comparison_choices c JOIN comparison_trials t ON t.id = c.trial_id"
                " JOIN studies s ON s.id = c.study_id WHERE s.name = :s AND c.rater = :r ORDER BY t.position"
            ),
            {"s": study, "r": rater},
        ).all()
    engine.dispose()
    return rows


def _run(
    env: dict[str, str], tmp_path: Path, study: str, rater: str, size: tuple[int, int], keys: list[list[str]]
) -> list[str]:
    width, height = size
    errors: list[str] = []
    word = "Pair" if study == "pairs" else "Set"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    environment = {**env, "ITAGGER_USER": rater, "ITAGGER_TAG_STUDY": study}
    with tagging_app(tmp_path, environment) as app, chromium() as browser:
        page = browser.new_page(viewport={"width": width, "height": height})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        page.goto(app.url)
        page.wait_for_selector(PARTS["answer"], timeout=90_000)
        try:
            for position, presses in enumerate(keys, start=1):
                _progress_is(page, f"{word} {position} of {len(keys)}")
                page.wait_for_function(
                    "(s) => [...document.querySelectorAll(s)].every(i => i.naturalWidth > 0)",
                    arg=PARTS["image"],
                    timeout=30_000,
                )
                layout = _assert_fits(page, f"{study} {position}", 2 if study == "pairs" else 4)
                for box in layout["rects"]["image"]:
                    shown_w, shown_h = shown_image_size(box)
                    if study == "pairs":
                        assert shown_w >= 0.3 * width or shown_h >= 0.55 * height, (shown_w, shown_h)
                    else:
                        assert shown_w >= 0.2 * width or shown_h >= 0.28 * height, (shown_w, shown_h)
                if position == 1:
                    page.screenshot(path=str(SCREENSHOTS / f"compare-{study}-{width}x{height}.png"))
                page.wait_for_timeout(60)
                for key in presses:
                    page.keyboard.press(key)
                if position == 1:
                    page.locator(PARTS["saved"]).get_by_text("✓ Saved").wait_for(timeout=30_000)
            end = page.get_by_text("All done — thank you!")
            end.wait_for(timeout=30_000)
            box = end.bounding_box()
            assert box and box["y"] >= 0 and box["y"] + box["height"] <= height
        except Exception:
            page.screenshot(path=str(SCREENSHOTS / f"compare-{study}-{width}x{height}-FAILED.png"))
            raise
        finally:
            page.close()
    return [e for e in errors if not any(i in e for i in IGNORED_CONSOLE)]


@pytest.mark.parametrize("size", [(1366, 768), (1920, 1080)], ids=str)
def test_keyboard_only_pairwise_study(
    study_home: dict[str, str], tmp_path: Path, size: tuple[int, int]
) -> None:
    rater = f"pairs-{size[0]}"
    presses = [["ArrowLeft"], ["ArrowRight"], ["ArrowDown"], ["="], ["ArrowLeft"]]
    errors = _run(study_home, tmp_path, "pairs", rater, size, presses)
    rows = _choices(study_home, "pairs", rater)
    assert [r.position for r in rows] == [1, 2, 3, 4, 5]
    items = [
        list(r.items) if not isinstance(r.items, str) else [int(i) for i in r.items.strip("[]").split(",")]
        for r in rows
    ]
    assert [r.best_image_id for r in rows] == [items[0][0], items[1][1], None, None, items[4][0]]
    assert [bool(r.tie) for r in rows] == [False, False, True, True, False]
    assert all(r.dwell_ms > 0 for r in rows)
    assert not errors, f"browser console errors: {errors}"


def test_keyboard_only_best_worst_study(study_home: dict[str, str], tmp_path: Path) -> None:
    rater = "sets"
    presses = [["1", "4"], ["2", "3"], ["4", "1"], ["3", "2"], ["1", "2"]]
    errors = _run(study_home, tmp_path, "sets", rater, (1366, 768), presses)
    rows = _choices(study_home, "sets", rater)
    assert len(rows) == 5
    for row, (best, worst) in zip(rows, presses, strict=True):
        items = (
            row.items
            if not isinstance(row.items, str)
            else [int(i) for i in row.items.strip("[]").split(",")]
        )
        assert (row.best_image_id, row.worst_image_id) == (items[int(best) - 1], items[int(worst) - 1])
    assert not errors, f"browser console errors: {errors}"
