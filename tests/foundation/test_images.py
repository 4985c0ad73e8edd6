"""One resolver for image references, the same rules whether it queries or reads an index."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from itagger_lib import Workspace, images
from itagger_lib.errors import ImageNotFoundError


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("images")
    workspace = Workspace(database_url=f"sqlite:///{root / 'db.sqlite'}", store=root / "store", home=root)
    workspace.ingest(sample_dir, progress=False)
    # the same file name in two folders: the name alone is ambiguous
    twin = root / "twin"
    twin.mkdir()
    first = sorted(sample_dir.iterdir())[0]
    (twin / first.name).write_bytes(first.read_bytes() + b"\0")
    workspace.ingest(twin, progress=False)
    yield workspace
    workspace.close()


def test_references_resolve_alike_by_query_and_by_index(ws: Workspace) -> None:
    table = ws.images()
    index = images.ImageIndex.read(ws.engine)
    image_id = int(table.index[2])
    sha = table.loc[image_id, "sha256"]
    unique_name = table["source_name"].value_counts().loc[lambda n: n == 1].index[0]
    for source in (ws.engine, index):
        assert images.resolve(source, image_id) == image_id
        assert images.resolve(source, np.int64(image_id)) == image_id
        assert images.resolve(source, float(image_id)) == image_id
        assert images.resolve(source, str(image_id)) == image_id
        assert images.resolve(source, sha[:8].upper()) == image_id
        assert images.resolve(source, unique_name, by_name=True) == int(
            table.index[table["source_name"] == unique_name][0]
        )
        with pytest.raises(ImageNotFoundError, match="8 hex digits"):
            images.resolve(source, sha[:6])
        with pytest.raises(ImageNotFoundError, match="no image has that id"):
            images.resolve(source, 10**6)
        with pytest.raises(ImageNotFoundError, match="not an image id"):
            images.resolve(source, True)
        with pytest.raises(ImageNotFoundError, match="is not in this workspace"):
            images.resolve(source, unique_name)  # a file name only where asked for


def test_an_ambiguous_file_name_names_the_images(ws: Workspace) -> None:
    table = ws.images()
    twice = table["source_name"].value_counts().loc[lambda n: n == 2].index[0]
    with pytest.raises(ImageNotFoundError, match=f"{twice}' matches 2 images"):
        images.resolve(ws.engine, twice, by_name=True)


def test_select_keeps_order_once_each_and_takes_frames(ws: Workspace) -> None:
    table = ws.images()
    ids = [int(i) for i in table.index]
    assert images.select(ws.engine, None) is None
    assert images.select(ws.engine, ids[1]) == [ids[1]]
    assert images.select(ws.engine, [ids[2], ids[0], ids[2]]) == [ids[2], ids[0]]
    assert images.select(ws.engine, table.iloc[:3]) == ids[:3]
    assert images.select(ws.engine, pd.Series(0, index=ids[:2])) == ids[:2]
    many = ids * 10  # above the bulk threshold: read the index once
    assert images.select(ws.engine, many) == ids
    with pytest.raises(ImageNotFoundError):
        images.select(ws.engine, [*ids, 10**6])
