"""The admin cockpit: workspace status, the VLM engine card, recent runs, uploads and smoke checks.

Each panel is a plain method returning data (tested in pytest); :attr:`AdminCockpit.widget`
only lays them out, in rows that wrap so nothing runs off a 1366-pixel screen. The VLM card
shows which keys are present, never their values; runs are a compact table with their
status in colour, and the failures of a run are one click away.
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

from itagger_lib.widgets.tagging_app import app_link
from itagger_lib.widgets.upload import UploadPanel

if TYPE_CHECKING:
    from itagger_lib.workspace import Workspace

KEY_VARIABLES = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")
KILL_SWITCH = "vlm.kill_switch"
SETTING_PROVIDER = "vlm.provider"
SETTING_MODEL = "vlm.model"
SETTING_BUDGET = "vlm.budget_usd"
SMOKE_IMAGES = 3
RECENT_RUNS = 10
STATUS_COLOURS = {
    "succeeded": "#2f7d32",
    "partial": "#b26a00",
    "failed": "#b00020",
    "interrupted": "#b00020",
    "running": "#1565c0",
}
TABLE_STYLE = "border-collapse:collapse;font-size:.9em"
CELL = "padding:2px 8px;text-align:left;vertical-align:top"
WRAP = widgets.Layout(flex_flow="row wrap", align_items="center")


def _table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    """An HTML table of already escaped cells."""
    head = "".join(f"<th style='{CELL}'>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td style='{CELL}'>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table class='{cls}' style='{TABLE_STYLE}'><tr>{head}</tr>{body}</table>"


def _when(value: Any) -> str:
    try:
        return value.strftime("%Y-%m-%d %H:%M")  # type: ignore[no-any-return]
    except (AttributeError, ValueError):
        return ""


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
        "price_rows": rows,
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

    def recent_runs(self, limit: int = RECENT_RUNS) -> list[dict[str, Any]]:
        """The newest runs: id, kind, status, start, user, done of total, failures, error."""
        runs = self.ws.runs().head(limit)
        return [
            {
                "id": int(run_id),
                "kind": row["kind"],
                "status": row["status"],
                "started": _when(row["started_at"]),
                "user": row["created_by"],
                "done": f"{int(row['n_done'])} of {int(row['n_total'])}",
                "failed": int(row["n_failed"]),
                "error": row["error"] or "",
            }
            for run_id, row in runs.iterrows()
        ]

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
        # the workspace's own prices, the one of the configured model and any older than 90 days;
        # the whole shipped table is `itagger vlm prices`
        rows_ = [
            r
            for r in card.get("price_rows") or []
            if r["origin"] == "workspace"
            or r["stale"]
            or (r["provider"], r["model"]) == (card["provider"], card["model"])
        ]
        prices = (
            "none set"
            if not rows_
            else _table(
                ["provider", "model", "input", "output", "batch in/out", "from", "set on / read on"],
                [
                    [
                        html.escape(str(r["provider"])),
                        html.escape(str(r["model"])),
                        f"${r['input']:g}",
                        f"${r['output']:g}",
                        "–"
                        if r.get("batch_input") is None
                        else f"${r['batch_input']:g} / ${r['batch_output']:g}",
                        html.escape(str(r["origin"])),
                        html.escape(str(r["read_on"] or "–")) + (" ⚠ over 90 days" if r["stale"] else ""),
                    ]
                    for r in rows_
                ],
                "itagger-prices",
            )
            + "<div style='color:#666;font-size:.85em'>USD per million tokens; "
            + f"{card['shipped_prices']} shipped with this release, the workspace's own rows over them "
            + "(itagger vlm prices)</div>"
        )
        stale = "; ".join(card["stale_prices"]) or "none"
        spend = "n/a" if card["spend_usd"] is None else f"${card['spend_usd']:.4f}"
        budget = "none set" if card["budget_usd"] is None else f"${float(card['budget_usd']):.2f}"
        rows = [
            ("engine", "installed" if card["engine_installed"] else "not installed"),
            ("provider", card["provider"]),
            ("model", card["model"]),
            ("keys", keys),
            ("prices older than 90 days", stale),
            ("budget", budget),
            ("spend so far", spend),
        ]
        body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
        body += f"<tr><th>prices</th><td>{prices}</td></tr>"
        return f"<h3>VLM engine</h3><table>{body}</table>"

    def runs_html(self) -> str:
        runs = self.recent_runs()
        if not runs:
            return "<h3>Recent runs</h3><p>No runs yet: upload images below, or run `itagger batch demo`.</p>"
        rows = [
            [
                str(r["id"]),
                html.escape(r["kind"]),
                f"<b style='color:{STATUS_COLOURS.get(r['status'], '#333')}'>{html.escape(r['status'])}</b>",
                r["started"],
                html.escape(str(r["user"])),
                r["done"],
                str(r["failed"] or ""),
                f"<span title='{html.escape(r['error'])}'>{html.escape(r['error'][:60])}</span>",
            ]
            for r in runs
        ]
        header = ["run", "kind", "status", "started", "user", "done", "failed", "error"]
        return "<h3>Recent runs</h3>" + _table(header, rows, "itagger-runs")

    def failures_html(self, run_id: int) -> str:
        failures = self.ws.failures(run_id)
        if failures.empty:
            return f"<p>Run {run_id} recorded no failures.</p>"
        rows = [
            [html.escape(str(f.input)), html.escape(str(f.reason))] for f in failures.head(50).itertuples()
        ]
        more = f"<p>… and {len(failures) - 50} more: ws.failures({run_id})</p>" if len(failures) > 50 else ""
        return (
            f"<h4>Failures of run {run_id}</h4>"
            + _table(["input", "reason"], rows, "itagger-failures")
            + more
        )

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
        runs, failures = widgets.HTML(self.runs_html()), widgets.HTML()
        failure_buttons = widgets.HBox(layout=WRAP)

        def show_runs() -> None:
            runs.value = self.runs_html()
            buttons = []
            for r in self.recent_runs():
                if r["failed"]:
                    button = widgets.Button(
                        description=f"failures of run {r['id']} ({r['failed']})",
                        layout=widgets.Layout(width="auto"),
                    )
                    button.on_click(lambda _, i=r["id"]: setattr(failures, "value", self.failures_html(i)))
                    buttons.append(button)
            failure_buttons.children = buttons

        show_runs()
        refresh.on_click(lambda _: show_runs())
        self.failure_buttons, self.failures = failure_buttons, failures
        upload.ingest_button.on_click(on_refresh)
        upload.folder_button.on_click(on_refresh)
        self.kill_switch_button, self.run_button, self.upload = kill, run, upload
        return widgets.VBox(
            [
                app_link(),
                widgets.HBox([status, refresh], layout=WRAP),
                engine,
                kill,
                runs,
                failure_buttons,
                failures,
                upload.widget,
                widgets.HTML("<h3>Smoke checks</h3>"),
                run,
                checks,
            ]
        )

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
