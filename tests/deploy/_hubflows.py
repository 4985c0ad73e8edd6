"""Browser steps shared by the native hub test and the compose stack test."""

from __future__ import annotations

from typing import Any

from tests.browser._layout import outside_viewport, screen_rects
from tests.deploy._hubstack import REPO

SCREENSHOTS = REPO / ".test-artifacts" / "screenshots"
APP_PATH = "voila/render/tagging_app.ipynb"
PROGRESS = """() => {
    const e = document.querySelector('.itagger-tagging .itagger-progress');
    return e ? e.innerText : '';
}"""


def tag_one_image(  # type: ignore[no-untyped-def]
    browser, stack: Any, user: str, label: str, errors: list[str], cookies: list[dict[str, Any]] | None = None
) -> None:
    """Log in over https as a tagger, land in the tagging app (the group's default URL, no
    code, no JupyterLab) and answer the first question with key 1, never touching the mouse.

    The image, the question and every answer button are inside the 1366×768 viewport.
    ``cookies`` receives every cookie the browser held at the end (to check their flags).
    """
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1366, "height": 768})
    page = context.new_page()
    page.on("pageerror", lambda e: errors.append(f"{user}: page error: {e}"))
    try:
        page.goto(f"{stack.https}/hub/login")
        page.fill("#username_input", user)
        page.fill("#password_input", stack.passwords[user])
        page.press("#password_input", "Enter")
        page.wait_for_url(f"**/user/{user}/{APP_PATH}*", timeout=90_000)
        page.wait_for_selector(".itagger-tagging .itagger-answer", timeout=90_000)
        page.wait_for_function(f"() => ({PROGRESS})().startsWith('Image 1 of ')", timeout=30_000)
        bad = outside_viewport(screen_rects(page))
        assert not bad, f"{user}: outside the 1366×768 viewport: {bad}"
        assert page.locator(".jp-InputArea, .jp-NotebookPanel").count() == 0  # no code, no lab
        first = page.evaluate(PROGRESS)
        page.wait_for_timeout(200)
        page.keyboard.press("1")
        # the next question of this image, or the next image when the codebook asks one question
        page.wait_for_function(f"t => ({PROGRESS})() !== t", arg=first, timeout=30_000)
        page.locator(".itagger-saved").get_by_text("✓ Saved").wait_for(timeout=30_000)
        page.screenshot(path=str(SCREENSHOTS / f"hub-app-{label}.png"))
        assert page.get_by_text("Error displaying widget").count() == 0
    except Exception:
        page.screenshot(path=str(SCREENSHOTS / f"hub-app-{label}-FAILED.png"), full_page=True)
        raise
    finally:
        if cookies is not None:
            cookies.extend(context.cookies())
        context.close()
