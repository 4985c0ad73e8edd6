"""Helpers for the notebook tests: where the notebooks are, and a workspace's environment."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
COCKPIT = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
BATCH = sorted((NOTEBOOKS / "batch").glob("*.ipynb"))


@pytest.fixture
def workspace_env(workspace) -> dict[str, str]:
    """The environment variables that point a kernel at the ``workspace`` fixture."""
    return {
        "ITAGGER_HOME": str(workspace.home),
        "ITAGGER_DATABASE_URL": workspace.settings.database_url,
        "ITAGGER_STORE": str(workspace.store.root),
        "ITAGGER_USER": "tester",
    }
