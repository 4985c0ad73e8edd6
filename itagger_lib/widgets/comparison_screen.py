"""How a comparison screen looks and reads: its style sheet and the words a rater sees.

Top: the progress line and the question; middle: the images of the trial side by side (two
for a pairwise trial; a 2 × 2 or 3 × 2 grid for best–worst), each under its key; bottom:
the answer buttons with their keys, back and skip, and the saved state. In the app the page
is fixed to the viewport and never scrolls. Pure functions and a constant, used by
:mod:`itagger_lib.widgets.comparison`.
"""

from __future__ import annotations

import html

STYLE = """
<style>
.itagger-compare.widget-box { display: grid; grid-template-columns: minmax(0, 1fr);
  grid-template-rows: auto minmax(0, 1fr) auto; gap: 8px; height: min(88vh, 1000px);
  box-sizing: border-box; padding: 8px; overflow: hidden; font-size: clamp(14px, 1vw, 19px);
  color: #1d1d1f; background: #fff; }
.itagger-compare.widget-box:focus { outline: none; }
.itagger-compare.itagger-app { position: fixed; inset: 0; height: auto; z-index: 100; padding: 12px 18px; }
.itagger-compare .itagger-hidden { display: none !important; }
.itagger-compare .widget-html { margin: 0; }
.itagger-compare .widget-html-content { line-height: 1.3; font-size: inherit; }
.itagger-compare .itagger-top { gap: 4px; min-width: 0; }
.itagger-compare .itagger-progress b { font-size: 1.1em; }
.itagger-compare .itagger-bar { height: 5px; background: #e5e5ea; border-radius: 3px; margin-top: 4px; }
.itagger-compare .itagger-bar > div { height: 5px; background: #2f7d32; border-radius: 3px; }
.itagger-compare .itagger-question-text { font-size: 1.25em; font-weight: 600; }
.itagger-compare .itagger-figures.widget-box { display: grid; gap: 10px; min-height: 0; min-width: 0;
  grid-auto-rows: minmax(0, 1fr); }
.itagger-compare .itagger-figures-2 { grid-template-columns: repeat(2, minmax(0, 1fr)); }
.itagger-compare .itagger-figures-3, .itagger-compare .itagger-figures-5,
.itagger-compare .itagger-figures-6 { grid-template-columns: repeat(3, minmax(0, 1fr)); }
.itagger-compare .itagger-figures-4 { grid-template-columns: repeat(2, minmax(0, 1fr)); }
.itagger-compare .itagger-figures-7, .itagger-compare .itagger-figures-8 {
  grid-template-columns: repeat(4, minmax(0, 1fr)); }
.itagger-compare .itagger-choice.widget-box { display: grid; grid-template-rows: auto minmax(0, 1fr);
  min-height: 0; min-width: 0; background: #1d1d1f; border-radius: 8px; overflow: hidden;
  border: 4px solid transparent; box-sizing: border-box; }
.itagger-compare .itagger-choice.itagger-best { border-color: #2f7d32; }
.itagger-compare .itagger-choice.itagger-worst { border-color: #b00020; }
.itagger-compare .itagger-choice .itagger-key { color: #fff; background: #3a3a3c; padding: 2px 10px;
  font-weight: 600; }
.itagger-compare .itagger-choice .widget-image { width: 100%; height: 100%; min-height: 0;
  object-fit: contain; }
.itagger-compare .itagger-controls { gap: 8px; flex-wrap: wrap; align-items: center; }
.itagger-compare .itagger-controls .widget-button { width: auto; margin: 0; font-size: .95em; }
.itagger-compare .itagger-controls .widget-button.itagger-answer { min-width: 9em; font-weight: 600; }
.itagger-compare .itagger-saved { font-size: .95em; min-height: 1.3em; }
.itagger-compare .itagger-foot { gap: 18px; flex-wrap: wrap; }
.itagger-compare .itagger-help { color: #6e6e73; font-size: .85em; }
.itagger-compare .itagger-end { font-size: 1.15em; }
.itagger-compare .itagger-end h2 { font-size: 1.8em; margin: 0 0 .4em 0; }
.itagger-compare.itagger-done .itagger-figures, .itagger-compare.itagger-done .itagger-controls {
  display: none !important; }
</style>
"""

#: what one trial is called, by design
TRIAL_WORD = {"pairwise": "Pair", "best_worst": "Set"}


def progress_html(word: str, position: int, total: int, done: int) -> str:
    """``Pair 4 of 22`` over a bar of the trials finished."""
    share = 0 if total == 0 else round(100 * done / total)
    return (
        f"<div class='itagger-progress'><b>{word} {position} of {total}</b> · {done} done"
        f"<div class='itagger-bar' title='{done} of {total} done'>"
        f"<div style='width:{share}%'></div></div></div>"
    )


def progress_text(word: str, position: int, total: int) -> str:
    return f"{word} {position} of {total}"


def question_html(prompt: str, step: str | None = None) -> str:
    """The study's question; for best–worst the step (``best`` or ``worst``) asked now."""
    ask = ""
    if step == "best":
        ask = "<div class='itagger-step'>Press the number of the image with the <b>most</b>.</div>"
    elif step == "worst":
        ask = "<div class='itagger-step'>Now press the number of the image with the <b>least</b>.</div>"
    return f"<div class='itagger-question-text'>{html.escape(prompt)}</div>{ask}"


def pair_help_html(ties: bool) -> str:
    tie = " · <b>↓</b> or <b>=</b> no difference" if ties else ""
    return f"Keys: <b>←</b> left · <b>→</b> right{tie} · <b>Backspace</b> back · <b>S</b> skip"


def best_worst_help_html(size: int) -> str:
    return (
        f"Keys: <b>1</b>–<b>{size}</b> choose (most first, then least) · <b>Backspace</b> back · "
        "<b>S</b> skip"
    )


def saved_html(text: str) -> str:
    return (
        f"<span style='color:#2f7d32;font-weight:600'>✓ Saved</span> "
        f"<span style='color:#6e6e73'>{html.escape(text)}</span>"
    )


def not_saved_html(reason: str) -> str:
    return f"<span style='color:#b00020'>✗ Not saved: {html.escape(reason)}</span> Try again."


def end_html(word: str, done: int) -> str:
    things = f"{word.lower()}s" if done != 1 else word.lower()
    return (
        "<div class='itagger-end'><div style='font-size:3em;color:#2f7d32;line-height:1'>✓</div>"
        "<h2>All done — thank you!</h2>"
        f"<p>You finished all {done} {things} of this study. Every answer is saved.</p>"
        "<p>You can close this page. To change your last answer, press <b>Backspace</b>.</p></div>"
    )
