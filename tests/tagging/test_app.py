"""The tagging app without a browser: what it shows, where it lives, how ``itagger tag`` starts it."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import pytest

from itagger_lib.commands.tag import app_environment
from itagger_lib.ratings.studies import create_study
from itagger_lib.widgets.tagging import TaggingWorkbench
from itagger_lib.widgets.tagging_app import APP_PATH, app_link, app_notebook, app_url, tagging_app

REPO = Path(__file__).resolve().parents[2]
CODE_WORDS = re.compile(r"ws\.|create_study|\(\)|itagger |import ")


def _text(widget: Any) -> str:
    parts = [getattr(widget, "value", "") if isinstance(getattr(widget, "value", ""), str) else ""]
    for child in getattr(widget, "children", ()):
        parts.append(_text(child))
    return " ".join(parts)


def test_committed_app_notebook_is_the_generated_one() -> None:
    committed = json.loads((REPO / "notebooks" / "tagging_app.ipynb").read_text(encoding="utf-8"))
    assert committed == app_notebook()


def test_app_url_under_the_hub_and_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ann/")
    assert app_url() == "/user/ann/voila/render/tagging_app.ipynb"
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX")
    assert app_url() == "/" + APP_PATH
    assert "href='/voila/render/tagging_app.ipynb'" in app_link().value


def test_empty_workspace_speaks_to_a_tagger(workspace: Any) -> None:
    screen = tagging_app(workspace)
    text = _text(screen)
    assert "Nothing to tag yet" in text and not CODE_WORDS.search(text.split("</style>")[-1])
    assert {"itagger-app", "itagger-done"} <= set(screen._dom_classes)


def test_app_is_the_workbench_filling_the_window(tagged_ws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    create_study(tagged_ws, "first", raters_per_image=1, seed=1)
    create_study(tagged_ws, "second", raters_per_image=1, seed=1)
    monkeypatch.setenv("ITAGGER_TAG_STUDY", "first")
    app = tagging_app(tagged_ws)
    assert isinstance(app, TaggingWorkbench) and app.app and app.study.name == "first"
    assert "itagger-app" in app._dom_classes and app.key_catcher.scope == "document"
    assert app.progress == "Image 1 of 12 · 3 questions left"
    app.close()
    monkeypatch.delenv("ITAGGER_TAG_STUDY")
    assert tagging_app(tagged_ws).study.name == "second"  # the newest


def test_itagger_tag_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ITAGGER_TAG_STUDY", raising=False)
    args = argparse.Namespace(
        database_url="sqlite:///x.db", store=str(tmp_path / "s"), home=None, rater="ann", study="pilot"
    )
    env = app_environment(args)
    assert env["ITAGGER_DATABASE_URL"] == "sqlite:///x.db"
    assert env["ITAGGER_STORE"] == str((tmp_path / "s").resolve())
    assert env["ITAGGER_USER"] == "ann" and env["ITAGGER_TAG_STUDY"] == "pilot"
