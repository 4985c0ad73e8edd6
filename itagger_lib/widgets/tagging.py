"""``TaggingWorkbench``: keyboard-first human rating of a study's images.

One screen per question: the image large, beside it the progress line, the question and
every answer as a button with its key and anchor label (:mod:`.tagging_screen` draws it),
auto-advance after an answer, ``←``/``Backspace`` to go back and change an answer, ``S`` to
skip. Keys come from a :class:`~itagger_lib.widgets.keys.KeyCatcher`: no hovering needed.
Every answer is written through (committed before the next question appears) and the
screen says so; a new workbench for the same rater resumes where they stopped. With
``app=True`` the screen fills the browser window and takes every key of the page (the
tagging app, :mod:`.tagging_app`).

Dwell time (ms a question was on screen before it was answered) is measured in the browser:
the key catcher sends each key press with the DOM ``event.timeStamp`` (a monotonic
``performance.now()`` clock of the page). The dwell of a question answered by key press
*n* is ``timeStamp(n) − timeStamp(n−1)`` when press *n−1* is what brought the question on
screen; otherwise (first question after a page load, a question reached with the mouse)
it falls back to the server's ``time.monotonic()`` between sending the question and
receiving the answer, which also counts the round trip.
"""

from __future__ import annotations

import contextlib
import html
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from itagger_lib.codebook import Attribute, get_codebook_by_id
from itagger_lib.errors import AssignmentError
from itagger_lib.ratings import queue
from itagger_lib.ratings.frames import machine_answer
from itagger_lib.ratings.recording import rater_ratings, record_rating
from itagger_lib.ratings.studies import StudyInfo, get_study
from itagger_lib.thumbnails import display_jpeg
from itagger_lib.widgets import tagging_screen as screen
from itagger_lib.widgets.keys import KeyCatcher

if TYPE_CHECKING:
    from itagger_lib.codebook import Answer, CodebookRef
    from itagger_lib.ratings.studies import StudyRef
    from itagger_lib.workspace import Workspace

LONG_SIDE = 1024
BACK_KEYS = ("ArrowLeft", "Backspace")
SKIP_KEYS = ("s", "S")


class TaggingWorkbench(W.VBox):
    """Rate the images of a study, one question at a time.

    Parameters
    ----------
    ws : the workspace.
    codebook : must be the study's codebook if given (a study fixes its codebook).
    rater : defaults to ``ws.user`` (``JUPYTERHUB_USER`` on the hub); never typed per rating.
    study : id or name; default the newest study.
    attributes : keys of the attributes to ask (default all), in codebook order.
    """

    def __init__(
        self,
        ws: Workspace,
        codebook: CodebookRef = None,
        rater: str | None = None,
        study: StudyRef = None,
        attributes: list[str] | None = None,
        long_side: int = LONG_SIDE,
        prefetch: int = 3,
        app: bool = False,
    ) -> None:
        self.ws = ws
        self.rater = rater or ws.user
        self.long_side = long_side
        self.n_prefetch = prefetch
        self.app = app
        self.session_id = uuid.uuid4().hex
        self.header = W.HTML()
        self.progress_label = W.HTML()
        self.image = W.Image(format="jpeg")
        self.question = W.HTML()
        self.assist = W.HTML()
        self.answers = W.VBox()
        self.answers.add_class("itagger-answers")
        self.back_button = W.Button(description="← Back", tooltip="Left arrow or Backspace")
        self.skip_button = W.Button(description="Skip image (S)", tooltip="S")
        self.back_button.on_click(lambda _: self.back())
        self.skip_button.on_click(lambda _: self.skip())
        self.skip_button.add_class("itagger-skip")
        self.message = W.HTML(
            "<span style='color:#6e6e73'>Each answer is saved the moment you give it.</span>"
        )
        self.message.add_class("itagger-saved")
        self.help = W.HTML()
        self.help.add_class("itagger-help")
        self.key_catcher = KeyCatcher(scope="document" if app else "container")
        self.key_catcher.add_class("itagger-hidden")
        self.key_catcher.on_key(self._on_event)
        style = W.HTML(screen.STYLE)
        style.add_class("itagger-hidden")
        self.figure = W.Box([self.image])
        self.figure.add_class("itagger-figure")
        nav = W.HBox([self.back_button, self.skip_button])
        nav.add_class("itagger-nav")
        self.progress_label.add_class("itagger-progress-line")
        self.question.add_class("itagger-question")
        self.header.add_class("itagger-help")
        self.panel = W.VBox(
            [
                self.progress_label,
                self.question,
                self.assist,
                self.answers,
                nav,
                self.message,
                self.help,
                self.header,
            ]
        )
        self.panel.add_class("itagger-panel")
        super().__init__([style, self.key_catcher, self.figure, self.panel])
        self.add_class("itagger-tagging")
        if app:
            self.add_class("itagger-app")
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="itagger-prefetch")
        self._cache: dict[int, Future[bytes]] = {}
        self._controls: dict[str, tuple[tuple[W.Widget, ...], Any]] = {}
        self.items: list[queue.Item] = []
        self.index = 0
        self.attr_index = 0
        self.finished = False
        self.progress = ""
        self._shown_mono = time.monotonic()
        self._shown_ts: float | None = None
        self.last_dwell: tuple[int, str] | None = None
        self._shown_image: int | None = None
        self.study: StudyInfo | None
        try:
            self.study = get_study(ws, study)
        except AssignmentError as exc:
            self.study = None
            self._stop(str(exc))
            return
        self.codebook = get_codebook_by_id(ws, self.study.codebook_id)
        if codebook is not None:
            wanted = getattr(codebook, "id", codebook)
            if wanted != self.codebook.id:
                raise AssignmentError(
                    f"study {self.study.name!r} uses codebook {self.codebook.name} {self.codebook.version} "
                    f"(id {self.codebook.id}); leave codebook=None or create a study with the other codebook"
                )
        self.attributes: list[Attribute] = self.codebook.select(attributes)
        self.mode = self.study.mode
        self.header.value = (
            f"Rating as <b>{html.escape(self.rater)}</b> · study {html.escape(self.study.name)}"
        )
        self.items = [
            i for i in queue.rater_items(ws, self.study, self.rater) if i.status in ("done", "skipped")
        ]
        self.index = len(self.items)
        self._advance_to_frontier()

    # -- navigation --------------------------------------------------------------------------

    @property
    def item(self) -> queue.Item | None:
        return self.items[self.index] if 0 <= self.index < len(self.items) else None

    @property
    def attribute(self) -> Attribute:
        return self.attributes[self.attr_index]

    def _advance_to_frontier(self) -> None:
        assert self.study is not None
        nxt = queue.next_assignment(self.ws, self.study, self.rater)
        if nxt is None:
            self.finished = True
            self._finish()
            return
        self.finished = False
        self.items.append(nxt)
        self.index = len(self.items) - 1
        answered = rater_ratings(self.ws, nxt.id, self.rater, self.codebook)
        self.attr_index = next((n for n, a in enumerate(self.attributes) if a.key not in answered), 0)
        self._show()

    def _next_item(self) -> None:
        self.attr_index = 0
        if self.index + 1 < len(self.items):
            self.index += 1
            self._show()
        else:
            self.index = len(self.items)
            self._advance_to_frontier()

    def answer(self, value: Answer, timestamp: float | None = None) -> None:
        """Record ``value`` for the current question and move on."""
        item = self.item
        if item is None or self.study is None:
            return
        attribute = self.attribute
        if timestamp is not None and self._shown_ts is not None:
            dwell, method = max(1, round(timestamp - self._shown_ts)), "browser"
        else:
            dwell, method = max(1, round((time.monotonic() - self._shown_mono) * 1000)), "server"
        last = self.attr_index == len(self.attributes) - 1
        try:
            record_rating(
                self.ws,
                item,
                attribute.key,
                value,
                self.rater,
                codebook=self.codebook,
                mode=self.mode,
                dwell_ms=dwell,
                session_id=self.session_id,
                complete=last,
            )
        except Exception as exc:  # shown to the rater, the question stays
            self.message.value = screen.not_saved_html(str(exc))
            return
        self.last_dwell = (dwell, method)
        self._shown_ts = timestamp
        self.message.value = screen.saved_html(attribute.label, self._answer_label(attribute, value))
        if last:
            self._next_item()
        else:
            self.attr_index += 1
            self._show()

    def back(self, timestamp: float | None = None) -> None:
        """Go to the previous question (of this image or the previous image)."""
        self._shown_ts = timestamp
        if self.attr_index > 0:
            self.attr_index -= 1
        elif self.index > 0:
            self.index -= 1
            self.attr_index = len(self.attributes) - 1
        self.finished = False
        self.remove_class("itagger-done")
        self._show()

    def skip(self, timestamp: float | None = None) -> None:
        """Skip the current image (it is not shown again to this rater)."""
        item = self.item
        if item is None:
            return
        self._shown_ts = timestamp
        if queue.get_item(self.ws, item.id).status == "assigned":
            queue.set_status(self.ws, item.id, "skipped")
        self.message.value = "<span style='color:#6e6e73'>Image skipped: it will not come back.</span>"
        self._next_item()

    # -- keyboard ----------------------------------------------------------------------------

    def _on_event(self, event: dict[str, Any]) -> None:
        if event.get("type") != "keydown" or self.study is None:
            return
        key = str(event.get("key", ""))
        ts = event.get("timeStamp")
        ts = float(ts) if isinstance(ts, int | float) else None
        if key in BACK_KEYS:
            self.back(ts)
        elif key in SKIP_KEYS:
            self.skip(ts)
        elif self.item is not None and not self.finished:
            attribute = self.attribute
            if key in attribute.hotkeys:
                self.answer(attribute.hotkeys[key], ts)
            elif key == "Enter" and attribute.type in ("continuous", "multi_label"):
                self.answer(self._pending_value(), ts)

    def press(self, key: str, timestamp: float | None = None) -> None:
        """Send a key as the browser would (for tests and scripts)."""
        self.key_catcher.press(key, timestamp)

    # -- rendering ---------------------------------------------------------------------------

    def _image_bytes(self, image_id: int) -> bytes:
        future = self._cache.pop(image_id, None)
        if future is not None:
            try:
                return future.result(timeout=30)
            except Exception:
                pass
        return display_jpeg(self.ws, image_id, self.long_side)

    def _prefetch(self) -> None:
        assert self.study is not None
        wanted = [i.image_id for i in self.items[self.index + 1 : self.index + 1 + self.n_prefetch]]
        if len(wanted) < self.n_prefetch:
            with contextlib.suppress(Exception):  # prefetching is best effort
                wanted += queue.upcoming_images(self.ws, self.study, self.rater, self.n_prefetch)
        for image_id in wanted[: self.n_prefetch + 1]:
            if image_id not in self._cache:
                self._cache[image_id] = self._pool.submit(display_jpeg, self.ws, image_id, self.long_side)
        if len(self._cache) > 4 * (self.n_prefetch + 1):
            for key in list(self._cache)[: len(self._cache) - 2 * (self.n_prefetch + 1)]:
                self._cache.pop(key, None)

    def _pending_value(self) -> Any:
        control = getattr(self, "_control", None)
        if isinstance(control, W.FloatSlider):
            return control.value
        if isinstance(control, W.SelectMultiple):
            return list(control.value)
        return None

    def _show(self) -> None:
        item = self.item
        if item is None:
            return
        attribute = self.attribute
        if self.index >= 0 and self._shown_image != item.image_id:
            self.image.value = self._image_bytes(item.image_id)
            self._shown_image = item.image_id
        answers = rater_ratings(self.ws, item.id, self.rater, self.codebook)
        current = answers.get(attribute.key)
        self.question.value = screen.question_html(attribute)
        self.assist.value = self._assist_text(item.image_id, attribute) if self.mode == "assisted" else ""
        controls = self._answer_controls(attribute, current)
        if self.answers.children != controls:
            self.answers.children = controls
        self.key_catcher.watched_keys = self._keys_of(attribute)
        self.help.value = screen.help_html(attribute)
        stats = queue.progress(self.ws, self.study, self.rater)
        n = min(self.index + 1, stats["total"])
        left = len(self.attributes) - self.attr_index
        self.progress = screen.progress_text(n, stats["total"], left)
        self.progress_label.value = screen.progress_html(n, stats["total"], left, stats["done"])
        self._shown_mono = time.monotonic()
        self._prefetch()

    def _answer_controls(self, attribute: Attribute, current: Any) -> tuple[W.Widget, ...]:
        """The answer widgets of ``attribute``, made once and reused (creating widgets per
        image would cost a comm round per widget), with ``current`` marked."""
        cached = self._controls.get(attribute.key)
        if cached is None:
            cached = self._controls[attribute.key] = (
                self._make_controls(attribute),
                getattr(self, "_control", None),
            )
        controls, self._control = cached
        if isinstance(self._control, W.FloatSlider):
            self._control.value = current if current is not None else attribute.min
        elif isinstance(self._control, W.SelectMultiple):
            self._control.value = tuple(current or ())
        else:
            for button, level in zip(controls, attribute.levels, strict=True):
                button.button_style = "info" if current == level.value else ""
        return controls

    def _make_controls(self, attribute: Attribute) -> tuple[W.Widget, ...]:
        self._control = None
        if attribute.type == "continuous":
            slider = W.FloatSlider(
                value=attribute.min,
                min=attribute.min,
                max=attribute.max,
                description="value",
            )
            ok = W.Button(description="OK (Enter)", button_style="primary")
            ok.on_click(lambda _: self.answer(slider.value))
            self._control = slider
            return (slider, ok)
        if attribute.type == "multi_label":
            options = [(level.label or str(level.value), level.value) for level in attribute.levels]
            select = W.SelectMultiple(options=options)
            ok = W.Button(description="OK (Enter)", button_style="primary")
            ok.on_click(lambda _: self.answer(list(select.value)))
            self._control = select
            return (select, ok)
        buttons = []
        for level in attribute.levels:
            button = W.Button(description=screen.answer_text(level), tooltip=level.definition or "")
            button.on_click(lambda _, v=level.value: self.answer(v))
            button.add_class("itagger-answer")
            buttons.append(button)
        return tuple(buttons)

    @staticmethod
    def _keys_of(attribute: Attribute) -> list[str]:
        """The keys the page hands to this question: its hotkeys, back, skip (and Enter)."""
        enter = ["Enter"] if attribute.type in ("continuous", "multi_label") else []
        return [*attribute.hotkeys, *BACK_KEYS, *SKIP_KEYS, *enter]

    @staticmethod
    def _answer_label(attribute: Attribute, value: Any) -> str:
        if attribute.type == "continuous":
            return f"{value:g}" if isinstance(value, int | float) else str(value)
        if attribute.type == "multi_label":
            return ", ".join(str(v) for v in value) or "none"
        try:
            level = attribute.level(value)
        except Exception:
            return str(value)
        return (
            f"{level.value} · {level.label}"
            if level.label and str(level.value) != level.label
            else str(level.label or level.value)
        )

    def _assist_text(self, image_id: int, attribute: Attribute) -> str:
        stored = machine_answer(self.ws, image_id, attribute.key)
        if stored is None:
            return "<div style='color:#666'>Model's answer: none yet</div>"
        value = attribute.from_columns(*stored)
        try:
            label = attribute.level(value).label or value
        except Exception:
            label = value
        return f"<div style='color:#555'>Model's answer: <b>{html.escape(str(label))}</b></div>"

    def _stop(self, text: str, title: str = "Nothing to tag") -> None:
        """A screen without a question: ``text`` says why (no study, no images)."""
        self.answers.children = ()
        self.question.value = screen.notice_html(title, text)
        self.assist.value = self.help.value = self.progress_label.value = self.progress = ""
        self.key_catcher.watched_keys = []
        self.add_class("itagger-done")

    def _finish(self) -> None:
        """The end screen: the rater's queue is empty; ``←`` still goes back."""
        assert self.study is not None
        stats = queue.progress(self.ws, self.study, self.rater)
        self.answers.children = ()
        self.question.value = screen.end_html(stats["done"])
        self.progress = f"All done: {stats['done']} of {stats['total']} images"
        self.assist.value = self.help.value = self.progress_label.value = ""
        self.key_catcher.watched_keys = list(BACK_KEYS)
        self.add_class("itagger-done")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        super().close()
