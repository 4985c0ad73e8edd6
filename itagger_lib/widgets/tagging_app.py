"""The tagging app: the page a tagger sees, a notebook served by Voilà without its code.

``notebooks/tagging_app.ipynb`` holds one cell, ``tagging_app()``; Voilà runs it in a kernel
of its own and shows only the output: the :class:`TaggingWorkbench` filling the window
(``app=True``: the image, the question and every answer on one screen, keys that work
without hovering). ``itagger tag`` serves it on one machine; on the hub it is the default
URL of the ``tagger`` group (:data:`APP_PATH` under the user's server) and one link away in
JupyterLab (:func:`app_link`).

What the app needs comes from the environment, as for every notebook: the workspace
(``ITAGGER_DATABASE_URL`` …), the rater (``JUPYTERHUB_USER`` on the hub, else
``ITAGGER_USER``), and optionally ``ITAGGER_TAG_STUDY`` (a study name or id; default the
newest). A pairwise or best–worst study opens the comparison screen
(:class:`~itagger_lib.widgets.comparison.ComparisonWorkbench`). When there is nothing to
tag the page says so in a tagger's words, never with code.
"""

from __future__ import annotations

import html
import os
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from itagger_lib.errors import ItaggerError
from itagger_lib.widgets import tagging_screen as screen

if TYPE_CHECKING:
    from itagger_lib.workspace import Workspace

APP_NOTEBOOK = "tagging_app.ipynb"
#: the app under a Jupyter server (Voilà's server extension), relative to the server's root
APP_PATH = f"voila/render/{APP_NOTEBOOK}"
STUDY_VARIABLE = "ITAGGER_TAG_STUDY"
APP_SOURCE = "from itagger_lib.widgets.tagging_app import tagging_app\n\ntagging_app()"


def app_notebook() -> dict[str, Any]:
    """The app notebook as nbformat 4 JSON (``notebooks/tagging_app.ipynb`` is this)."""
    return {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": "tagging-app",
                "metadata": {},
                "outputs": [],
                "source": APP_SOURCE.splitlines(keepends=True),
            }
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "title": "Image Tagger",
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def app_url(prefix: str | None = None) -> str:
    """The app's address on this Jupyter server: ``/user/<name>/voila/render/…`` on the hub."""
    base = prefix if prefix is not None else os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    return base.rstrip("/") + "/" + APP_PATH


def app_link(prefix: str | None = None) -> W.HTML:
    """A link that opens the tagging app in a new browser tab (for JupyterLab's notebooks)."""
    return W.HTML(
        f"<a href='{html.escape(app_url(prefix))}' target='_blank' rel='noopener' "
        "style='font-weight:600'>Open the tagging app ↗</a> "
        "<span style='color:#6e6e73'>(what taggers see: one question per screen, keys only)</span>"
    )


def notice(title: str, text: str) -> W.VBox:
    """A whole-window message in the app's style, for when there is nothing to tag."""
    style = W.HTML(screen.STYLE)
    style.add_class("itagger-hidden")
    body = W.HTML(screen.notice_html(title, text))
    panel = W.VBox([body])
    panel.add_class("itagger-panel")
    box = W.VBox([style, panel])
    for name in ("itagger-tagging", "itagger-app", "itagger-done"):
        box.add_class(name)
    return box


def _is_comparative(ws: Workspace, study: str | int | None) -> bool:
    """Whether the study the app opens is pairwise or best–worst (a comparison screen)."""
    from itagger_lib.comparisons.studies import is_comparative
    from itagger_lib.ratings.studies import get_study

    return is_comparative(get_study(ws, study))


def tagging_app(ws: Workspace | None = None, study: str | int | None = None) -> W.Widget:
    """The app's one screen: the workbench for this rater, or a notice saying why not."""
    from itagger_lib.ratings.studies import list_studies
    from itagger_lib.widgets.tagging import TaggingWorkbench

    if ws is None:
        from itagger_lib.workspace import Workspace

        try:
            ws = Workspace()
        except Exception as exc:  # the tagger can do nothing about it; the admin can
            return notice(
                "The tagging app cannot start",
                f"It cannot open its workspace ({type(exc).__name__}: {exc}). "
                "Please tell the person running the study.",
            )
    if study is None:
        raw = os.environ.get(STUDY_VARIABLE) or None
        study = int(raw) if raw and raw.isdigit() else raw
    if not list_studies(ws):
        return notice(
            "Nothing to tag yet",
            "No study has been started. Please come back when the person running the study "
            "tells you it is open.",
        )
    try:
        if _is_comparative(ws, study):
            from itagger_lib.widgets.comparison import ComparisonWorkbench

            return ComparisonWorkbench(ws, study=study, app=True)
        return TaggingWorkbench(ws, study=study, app=True)
    except ItaggerError as exc:
        return notice("The tagging app cannot start", f"{exc} Please tell the person running the study.")
