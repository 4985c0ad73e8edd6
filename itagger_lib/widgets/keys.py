"""``KeyCatcher``: the keys of a page sent to Python, with no hovering needed.

ipyevents listens only while the mouse pointer is over its widget; a rater who moves the
mouse away, or never touches it, loses the keys. This widget (an `anywidget
<https://anywidget.dev>`_ module, no build step) listens on the whole document in the
capture phase instead, so the keys arrive as soon as the page is shown and after any click.

``scope="document"`` (the tagging app, a page of its own): every listed key goes to Python.
``scope="container"`` (a notebook in JupyterLab): only while the focus is inside the
element matching ``container`` (it takes the focus when it appears and whenever it is
clicked) or the pointer is over it; elsewhere JupyterLab keeps its own shortcuts.

Only the keys in ``watched_keys`` are taken (``preventDefault``), never with Ctrl, Alt or Meta, and
never from a text field, so Tab, reload and copy work as usual. A clicked button gives up
the focus, so that Space or Enter cannot press it a second time. Each key reaches Python as
``{"type": "keydown", "key": ..., "timeStamp": ...}`` (the DOM ``event.timeStamp``, a
monotonic ``performance.now()`` clock) through :meth:`on_key`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anywidget
import traitlets

_ESM = """
const EDITABLE = 'input, textarea, select, [contenteditable=""], [contenteditable="true"]';

function render({ model, el }) {
  el.style.display = 'none';
  const owner = () => el.closest(model.get('container'));
  const inside = (box, event) =>
    box && (box.contains(event.target) || box.contains(document.activeElement) || box.matches(':hover'));
  const onKey = (event) => {
    if (!el.isConnected || event.ctrlKey || event.altKey || event.metaKey) return;
    if (!model.get('watched_keys').includes(event.key)) return;
    if (event.target && event.target.closest && event.target.closest(EDITABLE)) return;
    if (model.get('scope') !== 'document' && !inside(owner(), event)) return;
    event.preventDefault();
    event.stopPropagation();
    model.send({ type: 'keydown', key: event.key, timeStamp: event.timeStamp });
  };
  const onClick = (event) => {
    const box = owner();
    const button = event.target && event.target.closest ? event.target.closest('button') : null;
    if (box && box.contains(event.target)) {
      if (button) setTimeout(() => button.blur(), 0);
      if (model.get('scope') !== 'document') box.focus({ preventScroll: true });
    }
  };
  document.addEventListener('keydown', onKey, true);
  document.addEventListener('click', onClick, true);
  let tries = 0;
  const focus = () => {
    const box = owner();
    if (box) {
      box.tabIndex = -1;
      box.focus({ preventScroll: true });
    } else if (tries++ < 100) {
      requestAnimationFrame(focus);
    }
  };
  if (model.get('take_focus')) focus();
  return () => {
    document.removeEventListener('keydown', onKey, true);
    document.removeEventListener('click', onClick, true);
  };
}

export default { render };
"""


class KeyCatcher(anywidget.AnyWidget):  # type: ignore[misc]
    """Send the listed ``watched_keys`` of the page to Python (see the module docstring)."""

    _esm = traitlets.Unicode(_ESM).tag(sync=True)
    watched_keys = traitlets.List(traitlets.Unicode()).tag(sync=True)
    scope = traitlets.Enum(("document", "container"), default_value="container").tag(sync=True)
    container = traitlets.Unicode(".itagger-tagging").tag(sync=True)
    take_focus = traitlets.Bool(True).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._handlers: list[Callable[[dict[str, Any]], None]] = []
        self.on_msg(self._receive)

    def on_key(self, handler: Callable[[dict[str, Any]], None]) -> None:
        """Call ``handler(event)`` for every key press taken."""
        self._handlers.append(handler)

    def _receive(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "keydown":
            for handler in self._handlers:
                handler(content)

    def press(self, key: str, timestamp: float | None = None) -> None:
        """Deliver ``key`` as the browser would (for tests and scripts)."""
        content: dict[str, Any] = {"type": "keydown", "key": key}
        if timestamp is not None:
            content["timeStamp"] = timestamp
        self._receive(self, content, [])
