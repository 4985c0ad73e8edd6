"""Layout checks from element bounding boxes, shared by the browser tests and the hub flow."""

from __future__ import annotations

from typing import Any

#: the parts of a tagging screen a rater must see without scrolling
SCREEN_PARTS = {
    "image": ".itagger-tagging .itagger-figure img",
    "progress": ".itagger-tagging .itagger-progress",
    "question": ".itagger-tagging .itagger-question-text",
    "answer": ".itagger-tagging .itagger-answer",
    "saved": ".itagger-tagging .itagger-saved",
}

_RECTS = """(selectors) => {
    const out = {};
    for (const [name, selector] of Object.entries(selectors)) {
        out[name] = [...document.querySelectorAll(selector)].map(e => {
            const r = e.getBoundingClientRect();
            return {left: r.left, top: r.top, right: r.right, bottom: r.bottom,
                    width: r.width, height: r.height, text: (e.innerText || '').slice(0, 60),
                    natural: e.naturalWidth ? [e.naturalWidth, e.naturalHeight] : null};
        });
    }
    return {rects: out, width: window.innerWidth, height: window.innerHeight,
            scrollWidth: document.documentElement.scrollWidth,
            scrollHeight: document.documentElement.scrollHeight};
}"""


def screen_rects(page: Any, selectors: dict[str, str] | None = None) -> dict[str, Any]:
    """Bounding boxes (CSS pixels, relative to the viewport) of every match of each selector."""
    return page.evaluate(_RECTS, selectors or SCREEN_PARTS)  # type: ignore[no-any-return]


def outside_viewport(layout: dict[str, Any], tolerance: float = 0.5) -> list[str]:
    """``name: text (box)`` for each box not entirely inside the viewport, or of no size."""
    width, height = layout["width"], layout["height"]
    bad = []
    for name, boxes in layout["rects"].items():
        if not boxes:
            bad.append(f"{name}: not on the page")
        for box in boxes:
            inside = (
                box["left"] >= -tolerance
                and box["top"] >= -tolerance
                and box["right"] <= width + tolerance
                and box["bottom"] <= height + tolerance
            )
            if not inside or box["width"] <= 0 or box["height"] <= 0:
                bad.append(f"{name}: {box['text']!r} at {box}")
    return bad


def shown_image_size(box: dict[str, Any]) -> tuple[float, float]:
    """The painted size of an ``object-fit: contain`` image inside its element's box."""
    natural_w, natural_h = box["natural"]
    scale = min(box["width"] / natural_w, box["height"] / natural_h)
    return natural_w * scale, natural_h * scale


_OVERFLOW = """(container) => {
    const bad = [];
    const controls = 'button, input, select, textarea, .widget-dropdown, .widget-text, '
        + '.widget-inline-hbox, .widget-checkbox, .widget-html, .widget-image, table';
    for (const cell of document.querySelectorAll(container)) {
        const limit = cell.getBoundingClientRect();
        for (const e of cell.querySelectorAll(controls)) {
            const r = e.getBoundingClientRect();
            if (r.width === 0 && r.height === 0) continue;
            if (r.right > limit.right + 0.5 || r.left < limit.left - 0.5) {
                bad.push(`${e.tagName}.${e.className} "${(e.innerText || e.value || '').slice(0, 40)}"`
                    + ` spans ${Math.round(r.left)}..${Math.round(r.right)}`
                    + ` in ${Math.round(limit.left)}..${Math.round(limit.right)}`);
            }
        }
    }
    return bad;
}"""


def overflowing_controls(page: Any, container: str = ".jp-OutputArea-output") -> list[str]:
    """Controls (buttons, fields, tables, …) that stick out of the output cell holding them."""
    return page.evaluate(_OVERFLOW, container)  # type: ignore[no-any-return]
