"""How a tagging screen looks and reads: its style sheet and the words a rater sees.

One screen per question: the image large on the left, and on the right, top to bottom, the
progress line, the question, every answer as a full-width button carrying its key and its
anchor label, back and skip, and the saved state. In the app, on a screen too narrow for
two columns (or taller than wide) the panel goes under the image. The page never scrolls in the app
(``.itagger-app``: fixed to the viewport); in a notebook the screen is at most 88 % of the
window high. Pure functions and a constant, used by :mod:`itagger_lib.widgets.tagging`.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from itagger_lib.codebook import Attribute, Level

STYLE = """
<style>
.itagger-tagging.widget-box { display: grid; grid-template-columns: minmax(0, 1fr) clamp(320px, 30vw, 560px);
  grid-template-rows: minmax(0, 1fr); gap: 12px 20px; height: min(88vh, 1000px); box-sizing: border-box;
  padding: 8px; overflow: hidden; font-size: clamp(14px, 1vw, 19px); color: #1d1d1f; background: #fff; }
.itagger-tagging.widget-box:focus { outline: none; }
.itagger-tagging.itagger-app { position: fixed; inset: 0; height: auto; z-index: 100; padding: 14px 18px; }
.itagger-tagging .itagger-hidden { display: none !important; }
.itagger-tagging .itagger-figure { grid-column: 1; grid-row: 1; min-width: 0; min-height: 0;
  align-items: center; justify-content: center; background: #1d1d1f; border-radius: 8px; overflow: hidden; }
.itagger-tagging .itagger-figure img { width: 100%; height: 100%; object-fit: contain; }
.itagger-tagging .itagger-panel { grid-column: 2; grid-row: 1; min-width: 0; min-height: 0;
  overflow-y: auto; gap: 8px; }
.itagger-tagging .itagger-panel > .widget-html { margin: 0; }
.itagger-tagging .widget-html-content { line-height: 1.35; font-size: inherit; }
.itagger-tagging .itagger-progress b { font-size: 1.15em; }
.itagger-tagging .itagger-bar { height: 6px; background: #e5e5ea; border-radius: 3px; margin-top: 6px; }
.itagger-tagging .itagger-bar > div { height: 6px; background: #2f7d32; border-radius: 3px; }
.itagger-tagging .itagger-label { text-transform: uppercase; letter-spacing: .06em; font-size: .8em;
  color: #6e6e73; }
.itagger-tagging .itagger-question-text { font-size: 1.3em; font-weight: 600; margin-top: 2px; }
.itagger-tagging .itagger-definition { color: #6e6e73; font-size: .9em; margin-top: 4px; }
.itagger-tagging .itagger-answers { flex-direction: column; gap: 5px; }
.itagger-tagging .itagger-answers .widget-button.itagger-answer { width: 100%; height: auto; min-height: 34px;
  margin: 0; padding: 5px 12px; white-space: normal; text-align: left; justify-content: flex-start;
  line-height: 1.25; font-size: 1em; }
.itagger-tagging .itagger-nav { gap: 8px; flex-wrap: wrap; }
.itagger-tagging .itagger-nav .widget-button { width: auto; margin: 0; font-size: .95em; }
.itagger-tagging .itagger-saved { font-size: .95em; min-height: 1.4em; }
.itagger-tagging .itagger-help { color: #6e6e73; font-size: .85em; }
.itagger-tagging .itagger-end { font-size: 1.15em; }
.itagger-tagging .itagger-end h2 { font-size: 1.8em; margin: 0 0 .4em 0; }
.itagger-tagging.itagger-done { grid-template-columns: minmax(0, 1fr); }
.itagger-tagging.itagger-done .itagger-figure, .itagger-tagging.itagger-done .itagger-skip { display: none; }
.itagger-tagging.itagger-done .itagger-panel { grid-column: 1; width: min(640px, 100%); justify-self: center;
  align-self: center; }
@media (max-width: 860px), (max-aspect-ratio: 1/1) {
  .itagger-tagging.itagger-app.widget-box { grid-template-columns: minmax(0, 1fr);
    grid-template-rows: minmax(0, 1fr) auto; }
  .itagger-app .itagger-panel { grid-column: 1; grid-row: 2; max-height: 55vh; }
  .itagger-app .itagger-answers { flex-direction: row; flex-wrap: wrap; }
  .itagger-app .itagger-answers .widget-button.itagger-answer { width: auto; }
}
</style>
"""


def answer_text(level: Level) -> str:
    """A button's text: its key and its label (the anchor of a scale point), e.g.
    ``1 · Chaotic, parts do not fit``; a point without a label shows its value."""
    label = level.label or str(level.value)
    if not level.hotkey or label == level.hotkey:
        return label
    return f"{level.hotkey} · {label}"


def questions_left(n: int) -> str:
    return "last question" if n == 1 else f"{n} questions left"


def progress_text(position: int, total: int, left: int) -> str:
    """``Image 4 of 12 · 2 questions left``: the image's place in the rater's queue and the
    questions of this image not yet answered, the one on screen included."""
    return f"Image {position} of {total} · {questions_left(left)}"


def progress_html(position: int, total: int, left: int, done: int) -> str:
    """:func:`progress_text` over a bar of the images finished."""
    share = 0 if total == 0 else round(100 * done / total)
    return (
        f"<div class='itagger-progress'><b>Image {position} of {total}</b> · {questions_left(left)}"
        f"<div class='itagger-bar' title='{done} of {total} images done'>"
        f"<div style='width:{share}%'></div></div></div>"
    )


def question_html(attribute: Attribute) -> str:
    definition = (
        f"<div class='itagger-definition'>{html.escape(attribute.definition)}</div>"
        if attribute.definition
        else ""
    )
    return (
        f"<div class='itagger-label'>{html.escape(attribute.label)}</div>"
        f"<div class='itagger-question-text'>{html.escape(attribute.question)}</div>{definition}"
    )


def help_html(attribute: Attribute) -> str:
    keys = list(attribute.hotkeys)
    if attribute.type in ("continuous", "multi_label"):
        answer = "<b>Enter</b> confirms"
    elif len(keys) > 2 and all(k.isdigit() for k in keys):
        answer = f"<b>{keys[0]}</b>–<b>{keys[-1]}</b> answer"
    else:
        answer = " / ".join(f"<b>{html.escape(k)}</b>" for k in keys) + " answer"
    return f"Keys: {answer} · <b>←</b> back · <b>S</b> skip image"


def saved_html(label: str, answer: str) -> str:
    return (
        f"<span style='color:#2f7d32;font-weight:600'>✓ Saved</span> "
        f"<span style='color:#6e6e73'>{html.escape(label)}: {html.escape(answer)}</span>"
    )


def not_saved_html(reason: str) -> str:
    return f"<span style='color:#b00020'>✗ Not saved: {html.escape(reason)}</span> Try again."


def end_html(images: int) -> str:
    if images == 0:
        return notice_html(
            "Nothing left for you here",
            "Every image of this study already has all the raters it needs. Thank you!",
        )
    finished = "the one image" if images == 1 else f"all {images} images"
    return (
        "<div class='itagger-end'><div style='font-size:3em;color:#2f7d32;line-height:1'>✓</div>"
        "<h2>All done — thank you!</h2>"
        f"<p>You finished {finished} of this study. Every answer is saved.</p>"
        "<p>You can close this page. To change your last answer, press <b>←</b>.</p></div>"
    )


def notice_html(title: str, text: str) -> str:
    return f"<div class='itagger-end'><h2>{html.escape(title)}</h2><p>{html.escape(text)}</p></div>"
