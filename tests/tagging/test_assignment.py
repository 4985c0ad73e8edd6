"""The tagging queue: slots, per-rater order, resume, repeats, gold, concurrency."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from itagger_lib.db.models import Assignment, Rating
from itagger_lib.errors import AssignmentError
from itagger_lib.ratings.queue import next_assignment, progress, rater_items
from itagger_lib.ratings.recording import record_rating
from itagger_lib.ratings.studies import create_study, get_study


def _drain(ws: Any, study: str, rater: str) -> list[Any]:
    items = []
    while (item := next_assignment(ws, study, rater)) is not None:
        record_rating(ws, item, "test_binary", 0, rater)
        items.append(item)
        assert len(items) < 200
    return items


def test_create_study_makes_k_slots_and_records_seed(tagged_ws: Any) -> None:
    info = create_study(tagged_ws, "s1", raters_per_image=2)
    assert info.seed > 0 and info.raters_per_image == 2 and info.mode == "blind"
    with tagged_ws.engine.connect() as c:
        counts = Counter(
            c.execute(sa.select(Assignment.image_id).where(Assignment.study_id == info.id)).scalars()
        )
    assert len(counts) == 12 and set(counts.values()) == {2}
    with pytest.raises(AssignmentError, match="already exists"):
        create_study(tagged_ws, "s1")
    with pytest.raises(AssignmentError, match="mode"):
        create_study(tagged_ws, "s2", mode="peek")


def test_workspace_delegates_create_study(tagged_ws: Any) -> None:
    info = tagged_ws.create_study("via_ws", raters_per_image=1, seed=7)
    assert get_study(tagged_ws, "via_ws").seed == 7 == info.seed


def test_no_study_message_says_what_to_do(workspace: Any) -> None:
    with pytest.raises(AssignmentError, match="create_study"):
        get_study(workspace)


def test_each_rater_gets_each_image_once_in_own_order(tagged_ws: Any) -> None:
    create_study(tagged_ws, "s", raters_per_image=3, seed=11)
    a = _drain(tagged_ws, "s", "alice")
    b = _drain(tagged_ws, "s", "bob")
    assert len(a) == 12 and len({i.image_id for i in a}) == 12
    assert len(b) == 12 and [i.image_id for i in a] != [i.image_id for i in b]
    assert [i.position for i in a] == list(range(1, 13))
    c = _drain(tagged_ws, "s", "carol")
    assert len(c) == 12
    assert _drain(tagged_ws, "s", "dave") == []  # k = 3 raters per image: nothing left
    assert progress(tagged_ws, "s", "dave") == {"done": 0, "total": 0, "remaining": 0}


def test_same_seed_same_order(tagged_ws: Any) -> None:
    create_study(tagged_ws, "x", raters_per_image=1, seed=5)
    create_study(tagged_ws, "y", raters_per_image=1, seed=5)
    assert [i.image_id for i in _drain(tagged_ws, "x", "r")] == [
        i.image_id for i in _drain(tagged_ws, "y", "r")
    ]


def test_resume_returns_claimed_item(tagged_ws: Any) -> None:
    create_study(tagged_ws, "s", raters_per_image=1)
    first = next_assignment(tagged_ws, "s", "alice")
    assert first is not None
    again = next_assignment(tagged_ws, "s", "alice")
    assert again == first
    assert progress(tagged_ws, "s", "alice") == {"done": 0, "total": 12, "remaining": 12}
    record_rating(tagged_ws, first, "calm", 3, "alice")
    assert progress(tagged_ws, "s", "alice") == {"done": 1, "total": 12, "remaining": 11}
    assert next_assignment(tagged_ws, "s", "alice").id != first.id


def test_repeats_and_gold(tagged_ws: Any) -> None:
    images = tagged_ws.images().index.tolist()
    gold = {images[0]: {"test_binary": 1}}
    create_study(tagged_ws, "s", raters_per_image=1, retest_share=0.25, gold=gold, gold_every=4, seed=3)
    items = _drain(tagged_ws, "s", "alice")
    kinds = Counter(i.kind for i in items)
    assert kinds["gold"] == 1 and kinds["normal"] == 11
    assert kinds["repeat"] == 2  # floor(11 * 0.25)
    normal = [i.image_id for i in items if i.kind == "normal"]
    assert len(set(normal)) == len(normal) and images[0] not in normal
    for repeat in (i for i in items if i.kind == "repeat"):
        earlier = [i for i in items if i.image_id == repeat.image_id and i.kind == "normal"]
        assert earlier and earlier[0].position < repeat.position
    # gold is given to every rater, even though k = 1
    bob = _drain(tagged_ws, "s", "bob")
    assert [i.kind for i in bob] == ["gold"]
    with tagged_ws.engine.connect() as c:
        flags = c.execute(sa.select(Rating.is_gold, Rating.is_repeat, Rating.repeat_index)).all()
    assert sum(f.is_gold for f in flags) == 2 and sum(f.is_repeat for f in flags) == 2


@pytest.mark.postgres
@pytest.mark.slow
def test_sixteen_concurrent_raters_on_postgres(pg_url: str, tmp_path: Path, sample_dir: Path) -> None:
    from itagger_lib import Workspace
    from tests.tagging._workers import rate_until

    from .conftest import SMALL_CODEBOOK

    ws = Workspace(database_url=pg_url, store=tmp_path / "store", home=tmp_path / "home", user="admin")
    ws.ingest(sample_dir, progress=False)
    ws.load_codebook(SMALL_CODEBOOK)
    k = 3
    create_study(ws, "race", raters_per_image=k)
    context = multiprocessing.get_context("spawn")
    raters = [f"rater{n:02d}" for n in range(16)]
    with context.Pool(16) as pool:
        results = pool.starmap(rate_until, [(pg_url, str(tmp_path), r, "race", 20.0) for r in raters])
    rated = {r: res for r, res in zip(raters, results, strict=True)}
    total = sum(len(v) for v in rated.values())
    assert total == 12 * k  # every slot rated, by someone, within the time bound
    for rater, items in rated.items():
        images = [image for _, image, _ in items]
        assert len(images) == len(set(images)), f"{rater} got an image twice"
    with ws.engine.connect() as c:
        per_image = Counter(
            c.execute(sa.select(Assignment.image_id).where(Assignment.rater.is_not(None))).scalars()
        )
        ratings = c.execute(sa.select(Rating.assignment_id, Rating.rater)).all()
        statuses = Counter(c.execute(sa.select(Assignment.status)).scalars())
    assert max(per_image.values()) <= k
    assert statuses == {"done": 12 * k}
    # no lost writes: one rating per rated item, by the rater the worker says
    claimed = {(aid, r) for r, items in rated.items() for aid, _, _ in items}
    assert {(r.assignment_id, r.rater) for r in ratings} == claimed and len(ratings) == total
    for r in raters:
        assert [i.rater for i in rater_items(ws, "race", r)] == [r] * len(rated[r])
    ws.close()
