"""Browser steps shared by the native hub test and the compose stack test."""

from __future__ import annotations

import re
from typing import Any

from tests.browser._lab import KERNEL_IDLE, KERNEL_READY
from tests.deploy._hubstack import REPO

SCREENSHOTS = REPO / ".test-artifacts" / "screenshots"
ALL_RAN = """() => {
    const prompts = [...document.querySelectorAll('.jp-InputPrompt')]
        .map(p => p.textContent).filter(t => t.includes('['));
    return prompts.length > 0 && prompts.every(t => /\\[\\d+\\]/.test(t));
}"""


def tag_one_image(  # type: ignore[no-untyped-def]
    browser, stack: Any, user: str, label: str, errors: list[str], cookies: list[dict[str, Any]] | None = None
) -> None:
    """Log in over https, open 02_Tag.ipynb, run it and answer the first question with key 1.

    ``cookies`` receives every cookie the browser held at the end (to check their flags).
    """
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1400, "height": 1200})
    page = context.new_page()
    page.on("pageerror", lambda e: errors.append(f"{user}: page error: {e}"))
    try:
        page.goto(f"{stack.https}/hub/login?next=/user/{user}/lab/tree/02_Tag.ipynb")
        page.fill("#username_input", user)
        page.fill("#password_input", stack.passwords[user])
        page.press("#password_input", "Enter")
        page.wait_for_url(f"**/user/{user}/lab/**", timeout=60_000)
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
        page.wait_for_function(
            "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
            " && window.jupyterapp.shell.currentWidget.sessionContext",
            timeout=60_000,
        )
        page.evaluate(KERNEL_READY)
        page.wait_for_function(KERNEL_IDLE, timeout=60_000)  # the kernel's websocket, through nginx
        page.wait_for_timeout(500)
        page.keyboard.press("Escape")
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        page.wait_for_function(ALL_RAN, timeout=60_000)
        page.wait_for_selector(".itagger-tagging .itagger-answer", timeout=60_000)
        page.hover(".itagger-tagging img")
        page.locator(".itagger-tagging").get_by_text("1 of 12").wait_for(timeout=30_000)
        page.wait_for_timeout(200)
        page.keyboard.press("1")
        # the next question of this image, or the next image when the codebook asks one question
        page.locator(".itagger-tagging").get_by_text(
            re.compile(r"question 2 of \d+|\b2 of 12\b")
        ).first.wait_for(timeout=30_000)
        page.screenshot(path=str(SCREENSHOTS / f"hub-02_Tag-{label}.png"), full_page=True)
        assert page.get_by_text("Error displaying widget").count() == 0
    except Exception:
        page.screenshot(path=str(SCREENSHOTS / f"hub-02_Tag-{label}-FAILED.png"), full_page=True)
        raise
    finally:
        if cookies is not None:
            cookies.extend(context.cookies())
        context.close()
