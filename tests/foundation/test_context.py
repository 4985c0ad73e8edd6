"""Domain functions need a context (engine, store, user, settings), not a workspace.

A plain object with those four attributes is enough: the seam a script, a service or a test
can use without the facade.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.engine import Engine

from itagger_lib import images
from itagger_lib.check import check_store
from itagger_lib.config import Settings
from itagger_lib.db import make_engine
from itagger_lib.db.migrate import open_schema
from itagger_lib.errors import ImageNotFoundError
from itagger_lib.ingest import ingest
from itagger_lib.overview import status
from itagger_lib.ratings.imports import add_ratings
from itagger_lib.store import ImageStore


@dataclass
class PlainContext:
    engine: Engine
    store: ImageStore
    user: str
    settings: Settings


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[PlainContext]:
    settings = Settings.from_env({}, home=tmp_path, user="script")
    engine = make_engine(settings.database_url)
    open_schema(engine, auto_migrate=True)
    yield PlainContext(engine, ImageStore(settings.store, readonly=False), settings.user, settings)
    engine.dispose()


def test_a_plain_object_is_a_context(plain: PlainContext, sample_dir: Path) -> None:
    report = ingest(plain, sample_dir, progress=False)
    assert len(report.added) == 12 and check_store(plain).ok
    first = images.table(plain.engine).iloc[0]
    assert images.resolve(plain.engine, first["sha256"][:9]) == int(first.name)
    assert status(plain)["images"] == 12 and status(plain)["user"] == "script"
    table = pd.DataFrame(
        {"image": [first["source_name"]], "rater": ["a"], "attribute": ["coherence"], "value": [3]}
    )
    assert int(add_ratings(plain, table)) == 1
    with pytest.raises(ImageNotFoundError, match="8 hex digits"):
        images.resolve(plain.engine, "abc")
