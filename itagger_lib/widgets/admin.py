"""The admin cockpit: workspace status, the VLM engine card, uploads and smoke checks.

Each panel is a plain method returning data (tested in pytest); :attr:`AdminCockpit.widget`
only lays them out. The VLM card shows which keys are present, never their values.
"""

from __future__ import annotations

import html
import importlib.util
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from itagger_lib.widgets.upload import UploadPanel

if TYPE_CHECKING:
    from itagger_lib.workspace import Workspace

KEY_VARIABLES = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")
KILL_SWITCH = "vlm.kill_switch"
SETTING_PROVIDER = "vlm.provider"
SETTING_MODEL = "vlm.model"
SETTING_BUDGET = "vlm.budget_usd"
SMOKE_IMAGES = 3


def feature_available(module: str) -> bool:
    """Whether an optional part of the package (e.g. ``itagger_lib.vlm.rating``) is installed."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@dataclass
class SmokeCheck:
    """One smoke check: passed, failed, or skipped (with why)."""

    name: str
    outcome: str
    message: str
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.outcome == "pass"


def run_check(name: str, check: Callable[[], tuple[str, str]]) -> SmokeCheck:
    started = time.perf_counter()
    try:
        outcome, message = check()
    except Exception as exc:  # a smoke check reports any failure instead of raising
        outcome, message = "fail", f"{type(exc).__name__}: {exc}"
    return SmokeCheck(name, outcome, message, time.perf_counter() - started)


def _engine_details(ws: Workspace) -> dict[str, Any]:
    """Provider and model as the engine resolves them, keys (``*_FILE`` too), the workspace's
    own prices, how many shipped ones apply, which prices are old, spend."""
    from itagger_lib.errors import ProviderError
    from itagger_lib.vlm import ledger, prices, registry
    from itagger_lib.vlm.secrets import read_secret

    rows = prices.price_rows(ws)
    own = [r for r in rows if r["origin"] == "workspace"]
    details: dict[str, Any] = {
        "keys": {variable: read_secret(variable) is not None for variable in KEY_VARIABLES},
        "prices": {
            f"{r['provider']}/{r['model']}": f"in {r['input']:g} / out {r['output']:g} per Mtok" for r in own
        },
        "shipped_prices": len(rows) - len(own),
        "stale_prices": [
            f"{r['provider']}/{r['model']} (read {r['read_on']}, {r['origin']})" for r in rows if r["stale"]
        ],
        "spend_usd": ledger.spent(ws),
    }
    try:
        details["provider"], details["model"] = registry.resolve(ws)
    except ProviderError as exc:
        details["provider"] = f"none: {exc}"
    return details


class AdminCockpit:
    """Workspace status, the VLM engine card, an upload panel and smoke checks.

    Examples
    --------
    >>> cockpit = it.AdminCockpit(ws)   # doctest: +SKIP
    >>> cockpit                         # doctest: +SKIP
    """

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.checks: list[SmokeCheck] = []
        self._widget: widgets.VBox | None = None

    def status(self) -> dict[str, Any]:
        """Counts, database, schema revision (and whether it is current) and package version."""
        status = dict(self.ws.status())
        status["schema_current"] = status["schema_revision"] == status["schema_head"]
        return status

    def next_step(self) -> str | None:
        """What to do next on an empty workspace, or ``None``."""
        if self.status()["images"] == 0:
            return (
                "No images yet: add some with the upload panel below, "
                "`ws.ingest('folder/')`, or `itagger batch demo` for the sample set."
            )
        return None

    def engine_card(self) -> dict[str, Any]:
        """Provider, model, which keys are present (never their values), the workspace's prices,
        the shipped ones in use, prices older than 90 days, budget, spend, and the kill switch."""
        ws = self.ws
        card: dict[str, Any] = {
            "engine_installed": feature_available("itagger_lib.vlm.rating"),
            "provider": ws.get_setting(SETTING_PROVIDER) or os.environ.get("ITAGGER_VLM_PROVIDER"),
            "model": ws.get_setting(SETTING_MODEL) or os.environ.get("ITAGGER_VLM_MODEL"),
            "keys": {name: bool(os.environ.get(name)) for name in KEY_VARIABLES},
            "prices": {},
            "shipped_prices": 0,
            "stale_prices": [],
            "budget_usd": ws.get_setting(SETTING_BUDGET),
            "spend_usd": None,
            "kill_switch": bool(ws.get_setting(KILL_SWITCH, False)),
        }
        if card["engine_installed"]:
            card.update(_engine_details(ws))
        card["provider"] = card["provider"] or "not set (chosen from the keys present)"
        card["model"] = card["model"] or "provider default"
        return card

    def set_kill_switch(self, on: bool) -> None:
        """Stop (``True``) or allow (``False``) new VLM calls in this workspace."""
        self.ws.set_setting(KILL_SWITCH, bool(on))

    def smoke_checks(self) -> list[SmokeCheck]:
        """Store check, science on a few images, and a VLM dry run; each pass, fail or skip."""
        ws = self.ws

        def store() -> tuple[str, str]:
            report = ws.check()
            return ("pass" if report.ok else "fail"), str(report).splitlines()[0]

        def science() -> tuple[str, str]:
            if not feature_available("itagger_lib.science.pipeline"):
                return "skip", "the science runner is not installed in this version"
            ids = [int(i) for i in ws.images().index[:SMOKE_IMAGES]]
            if not ids:
                return "skip", "no images yet: upload a few first"
            report = ws.run_science(images=ids, progress=False)
            ok = not report.failed
            return ("pass" if ok else "fail"), report.summary()

        def vlm() -> tuple[str, str]:
            if not feature_available("itagger_lib.vlm.rating"):
                return "skip", "the VLM engine is not installed in this version"
            ids = [int(i) for i in ws.images().index[:SMOKE_IMAGES]]
            if not ids:
                return "skip", "no images yet: upload a few first"
            result = ws.rate_with_vlm(provider="stub", images=ids, dry_run=True, progress=False)
            return "pass", str(result).splitlines()[0] if str(result) else "dry run done"

        self.checks = [
            run_check("store check", store),
            run_check("science on a few images", science),
            run_check("VLM dry run (stub)", vlm),
        ]
        return self.checks

    # -- rendering ------------------------------------------------------------------------

    def status_html(self) -> str:
        s = self.status()
        schema = "current" if s["schema_current"] else "BEHIND: run `itagger db upgrade`"
        rows = [
            ("images", s["images"]),
            ("runs", s["runs"]),
            ("recorded failures", s["failures"]),
            ("database", s["database"]),
            ("schema", f"{s['schema_revision']} ({schema})"),
            ("store", s["store"]),
            ("package version", s["package_version"]),
            ("user", s["user"]),
        ]
        body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
        hint = self.next_step()
        tip = f"<p class='itagger-next'><b>Next:</b> {html.escape(hint)}</p>" if hint else ""
        return f"<h3>Workspace</h3><table>{body}</table>{tip}"

    def engine_html(self) -> str:
        card = self.engine_card()
        keys = ", ".join(f"{k}: {'present' if v else 'absent'}" for k, v in card["keys"].items())
        prices = ", ".join(f"{m}: {p}" for m, p in card["prices"].items()) or "none set"
        prices += f"; {card['shipped_prices']} shipped (itagger vlm prices)"
        stale = "; ".join(card["stale_prices"]) or "none"
        spend = "n/a" if card["spend_usd"] is None else f"${card['spend_usd']:.4f}"
        budget = "none set" if card["budget_usd"] is None else f"${float(card['budget_usd']):.2f}"
        rows = [
            ("engine", "installed" if card["engine_installed"] else "not installed"),
            ("provider", card["provider"]),
            ("model", card["model"]),
            ("keys", keys),
            ("prices (USD)", prices),
            ("prices older than 90 days", stale),
            ("budget", budget),
            ("spend so far", spend),
        ]
        body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
        return f"<h3>VLM engine</h3><table>{body}</table>"

    def checks_html(self) -> str:
        if not self.checks:
            return "<p>Press <b>Run smoke checks</b> to test the store, science and the VLM.</p>"
        colour = {"pass": "green", "fail": "crimson", "skip": "gray"}
        rows = "".join(
            f"<tr><td>{html.escape(c.name)}</td><td style='color:{colour[c.outcome]}'><b>"
            f"{c.outcome.upper()}</b></td><td>{html.escape(c.message)}</td>"
            f"<td>{c.seconds:.1f} s</td></tr>"
            for c in self.checks
        )
        return f"<table class='itagger-smoke'>{rows}</table>"

    @property
    def widget(self) -> widgets.VBox:
        if self._widget is None:
            self._widget = self._build()
        return self._widget

    def _build(self) -> widgets.VBox:
        status = widgets.HTML(self.status_html())
        engine = widgets.HTML(self.engine_html())
        kill = widgets.ToggleButton(
            value=self.engine_card()["kill_switch"],
            description="Kill switch",
            icon="power-off",
            tooltip="stop all new VLM calls in this workspace",
        )
        kill.button_style = "danger" if kill.value else ""

        def on_kill(change: dict[str, Any]) -> None:
            self.set_kill_switch(change["new"])
            kill.button_style = "danger" if change["new"] else ""

        kill.observe(on_kill, names="value")
        upload = UploadPanel(self.ws)
        checks = widgets.HTML(self.checks_html())
        run = widgets.Button(
            description="Run smoke checks", icon="stethoscope", layout=widgets.Layout(width="auto")
        )

        def on_run(_: object) -> None:
            checks.value = "<p>Running …</p>"
            self.smoke_checks()
            checks.value = self.checks_html()
            status.value = self.status_html()

        def on_refresh(_: object) -> None:
            status.value = self.status_html()
            engine.value = self.engine_html()

        run.on_click(on_run)
        refresh = widgets.Button(description="Refresh", icon="refresh")
        refresh.on_click(on_refresh)
        upload.ingest_button.on_click(on_refresh)
        upload.folder_button.on_click(on_refresh)
        self.kill_switch_button, self.run_button, self.upload = kill, run, upload
        return widgets.VBox(
            [
                widgets.HBox([status, refresh]),
                engine,
                kill,
                upload.widget,
                widgets.HTML("<h3>Smoke checks</h3>"),
                run,
                checks,
            ]
        )

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
