"""``ComparisonWorkbench``: keyboard-first judging of a pairwise or best–worst study.

Pairwise: two images side by side; ``←`` chooses the left one, ``→`` the right one, ``↓``
or ``=`` says "no difference" where the study allows ties. Best–worst: 4–5 images
numbered 1…k; the first number pressed marks the image with the most, the second the one
with the least, and the trial is saved. ``Backspace`` goes back (first undoing a best
choice not yet saved, then to the previous trial, whose answer a new one replaces), ``S``
skips a trial. Every judgement is written through before the next trial appears and the
screen says so; a new workbench for the same rater resumes at their first open trial. The
queue and the storage are :mod:`itagger_lib.comparisons.queue`; with ``app=True`` the screen
fills the window and takes every key of the page (the tagging app).
"""

from __future__ import annotations

import contextlib
import html
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from itagger_lib.comparisons import queue
from itagger_lib.errors import ItaggerError
from itagger_lib.thumbnails import display_jpeg
from itagger_lib.widgets import comparison_screen as screen
from itagger_lib.widgets.keys import KeyCatcher

if TYPE_CHECKING:
    from itagger_lib.ratings.studies import StudyRef
    from itagger_lib.workspace import Workspace

BACK_KEYS = ("Backspace",)
SKIP_KEYS = ("s", "S")
LEFT_KEYS = ("ArrowLeft",)
RIGHT_KEYS = ("ArrowRight",)
TIE_KEYS = ("ArrowDown", "=")


class ComparisonWorkbench(W.VBox):
    """Judge the trials of a pairwise or best–worst study with the keyboard.

    Parameters
    ----------
    ws : the workspace.
    study : id or name of a pairwise or best–worst study; default the newest study.
    rater : defaults to ``ws.user`` (``JUPYTERHUB_USER`` on the hub).
    long_side : pixels of the long side of each image sent to the browser.
    app : fill the browser window and take every key of the page (the tagging app).
    """

    def __init__(
        self,
        ws: Workspace,
        study: StudyRef = None,
        rater: str | None = None,
        long_side: int | None = None,
        app: bool = False,
    ) -> None:
        self.ws = ws
        self.rater = rater or ws.user
        self.app = app
        self.session_id = uuid.uuid4().hex
        self.info = queue.comparative_study(ws, study)
        self.design = str(self.info.design["type"])
        self.size = 2 if self.design == "pairwise" else int(self.info.design["block_size"])
        self.ties = bool(self.info.design.get("ties"))
        self.word = screen.TRIAL_WORD[self.design]
        self.long_side = long_side or (1024 if self.size == 2 else 768)
        self.progress_label = W.HTML()
        self.question = W.HTML()
        self.message = W.HTML(
            "<span style='color:#6e6e73'>Each answer is saved the moment you give it.</span>"
        )
        self.message.add_class("itagger-saved")
        self.help = W.HTML(
            screen.pair_help_html(self.ties) if self.size == 2 else screen.best_worst_help_html(self.size)
        )
        self.help.add_class("itagger-help")
        self.header = W.HTML(
            f"Judging as <b>{html.escape(self.rater)}</b> · study {html.escape(self.info.name)}"
        )
        self.header.add_class("itagger-help")
        self.images = [W.Image(format="jpeg") for _ in range(self.size)]
        self.key_labels = [W.HTML() for _ in range(self.size)]
        self.figures = []
        for number, (key, image) in enumerate(zip(self.key_labels, self.images, strict=True)):
            key.add_class("itagger-key")
            key.value = self._figure_label(number)
            figure = W.VBox([key, image])
            figure.add_class("itagger-choice")
            self.figures.append(figure)
        self.figure_box = W.Box(self.figures)
        self.figure_box.add_class("itagger-figures")
        self.figure_box.add_class(f"itagger-figures-{self.size}")
        self.answer_buttons = self._make_buttons()
        back = W.Button(description="Back (Backspace)")
        back.on_click(lambda _: self.back())
        skip = W.Button(description="Skip (S)")
        skip.on_click(lambda _: self.skip())
        controls = W.HBox([*self.answer_buttons, back, skip, self.message])
        controls.add_class("itagger-controls")
        top = W.VBox([self.progress_label, self.question])
        top.add_class("itagger-top")
        foot = W.HBox([self.help, self.header])
        foot.add_class("itagger-foot")
        bottom = W.VBox([controls, foot])
        self.key_catcher = KeyCatcher(
            scope="document" if app else "container",
            container=".itagger-compare",
            watched_keys=self._watched(),
        )
        self.key_catcher.add_class("itagger-hidden")
        self.key_catcher.on_key(self._on_event)
        style = W.HTML(screen.STYLE)
        style.add_class("itagger-hidden")
        super().__init__([style, self.key_catcher, top, self.figure_box, bottom])
        self.add_class("itagger-compare")
        if app:
            self.add_class("itagger-app")
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="itagger-prefetch")
        self._cache: dict[int, Future[bytes]] = {}
        self._shown_mono = time.monotonic()
        self._shown_ts: float | None = None
        self.pending_best: int | None = None
        self.finished = False
        self.progress = ""
        first = queue.next_trial(ws, self.info, self.rater)  # writes the rater's schedule
        self.trials = queue.rater_trials(ws, self.info, self.rater)
        self.index = len(self.trials) if first is None else self._position_of(first.id)
        self._show()

    # -- state -------------------------------------------------------------------------------

    @property
    def trial(self) -> queue.Trial | None:
        return self.trials[self.index] if 0 <= self.index < len(self.trials) else None

    def _position_of(self, trial_id: int) -> int:
        return next(n for n, t in enumerate(self.trials) if t.id == trial_id)

    def _frontier(self) -> int:
        """The first open trial (``len(trials)`` when none is left)."""
        return next((n for n, t in enumerate(self.trials) if t.status == "open"), len(self.trials))

    def _mark(self, status: str) -> None:
        trial = self.trial
        assert trial is not None
        self.trials[self.index] = queue.Trial(
            trial.id, trial.study_id, trial.rater, trial.position, trial.items, status
        )

    def _advance(self) -> None:
        # an adaptive study adds the next batch once the rater's open pairs are done
        adaptive = self.info.design.get("adaptive") and self._frontier() == len(self.trials)
        if adaptive and queue.next_trial(self.ws, self.info, self.rater) is not None:
            self.trials = queue.rater_trials(self.ws, self.info, self.rater)
        frontier = self._frontier()
        self.index = self.index + 1 if self.index + 1 < frontier else frontier
        self.pending_best = None
        self._show()

    # -- actions -----------------------------------------------------------------------------

    def choose(self, number: int, timestamp: float | None = None) -> None:
        """Choose image ``number`` (0-based, left to right) of the trial on screen."""
        trial = self.trial
        if trial is None or not 0 <= number < self.size:
            return
        if self.size == 2:
            self._save(
                trial.items[number],
                trial.items[1 - number],
                False,
                timestamp,
                f"{'left' if number == 0 else 'right'} image chosen",
            )
        elif self.pending_best is None:
            self.pending_best = number
            self._show_marks()
            self.question.value = screen.question_html(self._prompt(), "worst")
        elif number != self.pending_best:
            best = self.pending_best
            self._save(
                trial.items[best],
                trial.items[number],
                False,
                timestamp,
                f"most: {best + 1}, least: {number + 1}",
            )

    def tie(self, timestamp: float | None = None) -> None:
        """No difference between the two images (pairwise studies that allow ties)."""
        trial = self.trial
        if trial is not None and self.size == 2 and self.ties:
            self._save(None, None, True, timestamp, "no difference")

    def _save(
        self, best: int | None, worst: int | None, tie: bool, timestamp: float | None, said: str
    ) -> None:
        trial = self.trial
        assert trial is not None
        if timestamp is not None and self._shown_ts is not None:
            dwell = max(1, round(timestamp - self._shown_ts))
        else:
            dwell = max(1, round((time.monotonic() - self._shown_mono) * 1000))
        try:
            queue.record_choice(
                self.ws,
                trial,
                best,
                worst,
                tie=tie,
                rater=self.rater,
                dwell_ms=dwell,
                session_id=self.session_id,
            )
        except ItaggerError as exc:  # shown to the rater; the trial stays
            self.message.value = screen.not_saved_html(str(exc))
            self.pending_best = None
            self._show_marks()
            return
        self._shown_ts = timestamp
        self._mark("done")
        self.message.value = screen.saved_html(f"{self.word} {trial.position}: {said}")
        self._advance()

    def back(self, timestamp: float | None = None) -> None:
        """Undo a best choice not yet saved, else go to the previous trial."""
        self._shown_ts = timestamp
        if self.pending_best is not None:
            self.pending_best = None
            self._show()
            return
        if self.index > 0:
            self.index -= 1
        self._show()

    def skip(self, timestamp: float | None = None) -> None:
        """Skip the trial on screen (it is not asked again)."""
        trial = self.trial
        if trial is None:
            return
        self._shown_ts = timestamp
        if trial.status == "open":
            queue.skip_trial(self.ws, trial, self.rater)
            self._mark("skipped")
        self.message.value = f"<span style='color:#6e6e73'>{self.word} skipped.</span>"
        self._advance()

    def press(self, key: str, timestamp: float | None = None) -> None:
        """Send a key as the browser would (for tests and scripts)."""
        self.key_catcher.press(key, timestamp)

    def _on_event(self, event: dict[str, Any]) -> None:
        key = str(event.get("key", ""))
        ts = event.get("timeStamp")
        ts = float(ts) if isinstance(ts, int | float) else None
        if key in BACK_KEYS:
            self.back(ts)
        elif self.trial is None:
            return
        elif key in SKIP_KEYS:
            self.skip(ts)
        elif self.size == 2 and key in LEFT_KEYS:
            self.choose(0, ts)
        elif self.size == 2 and key in RIGHT_KEYS:
            self.choose(1, ts)
        elif self.size == 2 and key in TIE_KEYS:
            self.tie(ts)
        elif self.size > 2 and key.isdigit():
            self.choose(int(key) - 1, ts)

    # -- rendering ---------------------------------------------------------------------------

    def _watched(self) -> list[str]:
        if self.size == 2:
            return [*LEFT_KEYS, *RIGHT_KEYS, *(TIE_KEYS if self.ties else ()), *BACK_KEYS, *SKIP_KEYS]
        return [*(str(n) for n in range(1, self.size + 1)), *BACK_KEYS, *SKIP_KEYS]

    def _figure_label(self, number: int) -> str:
        if self.size == 2:
            return "← Left" if number == 0 else "Right →"
        return str(number + 1)

    def _make_buttons(self) -> list[W.Button]:
        buttons = []
        if self.size == 2:
            specs = [("← Left", lambda: self.choose(0))]
            if self.ties:
                specs.append(("↓ No difference", self.tie))
            specs.append(("Right →", lambda: self.choose(1)))
            for text, action in specs:
                button = W.Button(description=text)
                button.on_click(lambda _, a=action: a())
                buttons.append(button)
        else:
            for number in range(self.size):
                button = W.Button(description=str(number + 1))
                button.on_click(lambda _, n=number: self.choose(n))
                buttons.append(button)
        for button in buttons:
            button.add_class("itagger-answer")
        return buttons

    def _prompt(self) -> str:
        return str(self.info.design.get("prompt", ""))

    def _image(self, image_id: int) -> bytes:
        future = self._cache.pop(image_id, None)
        if future is not None:
            with contextlib.suppress(Exception):
                return future.result(timeout=30)
        return display_jpeg(self.ws, image_id, self.long_side)

    def _prefetch(self) -> None:
        for trial in self.trials[self.index + 1 : self.index + 3]:
            for image_id in trial.items:
                if image_id not in self._cache:
                    self._cache[image_id] = self._pool.submit(display_jpeg, self.ws, image_id, self.long_side)
        while len(self._cache) > 4 * self.size:
            self._cache.pop(next(iter(self._cache)))

    def _show_marks(self) -> None:
        stored = self._stored_choice()
        for number, figure in enumerate(self.figures):
            figure.remove_class("itagger-best")
            figure.remove_class("itagger-worst")
            image_id = self.trial.items[number] if self.trial else None
            if number == self.pending_best or (
                self.pending_best is None and stored and stored[0] == image_id
            ):
                figure.add_class("itagger-best")
            elif self.pending_best is None and stored and stored[1] == image_id and self.size > 2:
                figure.add_class("itagger-worst")

    def _stored_choice(self) -> tuple[int | None, int | None] | None:
        trial = self.trial
        if trial is None or trial.status != "done":
            return None
        row = queue.choices_of(self.ws, [trial]).get(trial.id)
        return None if row is None else (row["best_image_id"], row["worst_image_id"])

    def _show(self) -> None:
        total = max(len(self.trials), int(self.info.design["trials_per_rater"]))
        done = sum(t.status != "open" for t in self.trials)
        trial = self.trial
        if trial is None:
            self.finished = True
            self.progress = f"All done: {done} of {total}"
            self.progress_label.value = ""
            self.question.value = screen.end_html(self.word, done)
            self.key_catcher.watched_keys = list(BACK_KEYS)
            self.add_class("itagger-done")
            return
        self.finished = False
        self.remove_class("itagger-done")
        self.key_catcher.watched_keys = self._watched()
        for image, image_id in zip(self.images, trial.items, strict=True):
            image.value = self._image(image_id)
        self.progress = screen.progress_text(self.word, trial.position, total)
        self.progress_label.value = screen.progress_html(self.word, trial.position, total, done)
        self.question.value = screen.question_html(self._prompt(), None if self.size == 2 else "best")
        self._show_marks()
        self._shown_mono = time.monotonic()
        self._prefetch()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        super().close()
