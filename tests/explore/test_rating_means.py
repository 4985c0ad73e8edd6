"""``rating_means`` is kept exact by the database triggers, whatever writes the ratings."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from itagger_lib import browse
from itagger_lib.db.models import Rating, RatingMean, utcnow
from itagger_lib.ratings import frames, record_rating


def _means_table(ws) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    with ws.engine.connect() as connection:
        frame = pd.read_sql(sa.select(RatingMean), connection)
    return frame.set_index(["image_id", "attribute"]).sort_index()


def _recomputed(ws) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """The same numbers aggregated from ``ratings`` directly, in pandas (the reference)."""
    statement = sa.select(Rating.image_id, Rating.attribute, Rating.value).where(
        Rating.source.in_(("human", "import")), Rating.value.is_not(None)
    )
    with ws.engine.connect() as connection:
        ratings = pd.read_sql(statement, connection)
    rows = []
    for (image_id, attribute), values in ratings.groupby(["image_id", "attribute"])["value"]:
        counts = values.value_counts()
        top = counts.max()
        modal = sorted(counts[counts == top].index)
        rows.append(
            {
                "image_id": image_id,
                "attribute": attribute,
                "n": len(values),
                "mean": values.mean(),
                "median": values.median(),
                "modes": len(modal),
                "mode": modal[0] if len(modal) == 1 else None,
                "mode_share": top / len(values),
            }
        )
    columns = ["image_id", "attribute", "n", "mean", "median", "modes", "mode", "mode_share"]
    return pd.DataFrame(rows, columns=columns).set_index(["image_id", "attribute"]).sort_index()


def _assert_consistent(ws) -> None:  # type: ignore[no-untyped-def]
    kept, reference = _means_table(ws), _recomputed(ws)
    assert list(kept.index) == list(reference.index)
    assert list(kept["n"]) == list(reference["n"])
    assert list(kept["modes"]) == list(reference["modes"])
    for column in ("mean", "median", "mode", "mode_share"):
        pd.testing.assert_series_equal(
            kept[column].astype(float), reference[column].astype(float), check_exact=False, rtol=1e-12
        )


def test_inserts_updates_deletes_keep_means_exact(workspace, sample_dir: Path) -> None:
    ws = workspace
    ws.ingest(sample_dir, progress=False)
    book = ws.load_codebook()
    ids = [int(i) for i in ws.images().index[:4]]
    attribute = next(a.key for a in book.attributes if a.type == "ordinal")
    # human answers through the tagging write path; a changed answer updates its row
    record_rating(ws, ids[0], attribute, 2, rater="ann")
    record_rating(ws, ids[0], attribute, 4, rater="bob")
    record_rating(ws, ids[0], attribute, 5, rater="ann")  # ann changes her mind: 2 → 5
    record_rating(ws, ids[1], attribute, 3, rater="ann")
    # imported ratings count, VLM and adjudicated values do not
    ws.add_ratings(
        pd.DataFrame(
            {"image_id": [ids[1], ids[2]], "rater": "paper", "attribute": attribute, "value": [5, 1]}
        )
    )
    with ws.engine.begin() as connection:
        for source, rater in (("vlm", "vlm:openai/m"), ("adjudication", "judge")):
            connection.execute(
                sa.insert(Rating).values(
                    image_id=ids[0],
                    attribute=attribute,
                    rater=rater,
                    source=source,
                    value=1.0,
                    codebook_id=book.id,
                    rated_at=utcnow(),
                )
            )
    means = _means_table(ws)
    assert means.loc[(ids[0], attribute), "n"] == 2
    assert means.loc[(ids[0], attribute), "mean"] == pytest.approx(4.5)
    assert means.loc[(ids[1], attribute), "mean"] == pytest.approx(4.0)
    assert (ids[3], attribute) not in means.index
    _assert_consistent(ws)

    # a rating moved to another source stops counting; deleting the last one removes the row
    with ws.engine.begin() as connection:
        connection.execute(sa.update(Rating).where(Rating.rater == "bob").values(source="adjudication"))
        connection.execute(sa.delete(Rating).where(Rating.image_id == ids[2]))
    means = _means_table(ws)
    assert means.loc[(ids[0], attribute), "mean"] == pytest.approx(5.0)
    assert (ids[2], attribute) not in means.index
    _assert_consistent(ws)

    # the explorer filters and sorts by the kept means
    frame, total = browse.page(
        ws, browse.Query(rating_ranges={attribute: (4.0, None)}, sort=f"rating:{attribute}", descending=True)
    )
    assert total == 2
    assert list(frame["id"]) == [ids[0], ids[1]]
    assert frames.mean_ratings(ws, attribute).to_dict() == pytest.approx({ids[0]: 5.0, ids[1]: 4.0})


@pytest.mark.postgres
def test_concurrent_writers_lose_no_update(pg_url: str, tmp_path: Path, sample_dir: Path) -> None:
    """Many connections rating the same images at once: the means stay exact (Postgres)."""
    from itagger_lib import Workspace

    ws = Workspace(database_url=pg_url, store=tmp_path / "store", home=tmp_path)
    ws.ingest(sample_dir, progress=False)
    book = ws.load_codebook()
    attribute = next(a.key for a in book.attributes if a.type == "ordinal")
    ids = [int(i) for i in ws.images().index[:2]]
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def rater(index: int) -> None:
        rng = random.Random(index)
        try:
            barrier.wait()
            for round_ in range(15):
                for image_id in ids:
                    record_rating(ws, image_id, attribute, rng.randint(1, 5), rater=f"r{index}")
                if round_ % 5 == 4:  # some deletes under contention too
                    with ws.engine.begin() as connection:
                        connection.execute(
                            sa.delete(Rating).where(Rating.rater == f"r{index}", Rating.image_id == ids[0])
                        )
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=rater, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    _assert_consistent(ws)
    ws.close()


def test_bulk_statements_and_cascades_keep_means_exact(workspace, sample_dir: Path) -> None:
    """Many rows per statement (a COPY-sized import, a bulk UPDATE/DELETE), moves, cascades."""
    ws = workspace
    ws.ingest(sample_dir, progress=False)
    book = ws.load_codebook()
    ids = [int(i) for i in ws.images().index]
    ordinal = [a.key for a in book.attributes if a.type == "ordinal"][:3]
    rng = random.Random(7)
    # one statement: every image × attribute × 3 raters, repeated keys within the statement
    rows = [
        {"image_id": i, "rater": f"r{k}", "attribute": a, "value": rng.randint(1, 7)}
        for i in ids
        for a in ordinal
        for k in range(3)
    ]
    ws.add_ratings(pd.DataFrame(rows))
    _assert_consistent(ws)
    with ws.engine.begin() as connection:
        # a bulk update that changes values, one that changes nothing counted (note only),
        # and one that moves ratings to another attribute
        connection.execute(
            sa.update(Rating).where(Rating.attribute == ordinal[0]).values(value=Rating.value + 0.5)
        )
        connection.execute(sa.update(Rating).values(note="checked"))
        connection.execute(
            sa.update(Rating)
            .where(Rating.attribute == ordinal[1], Rating.rater == "r0")
            .values(attribute=ordinal[2])
        )
    _assert_consistent(ws)
    means = _means_table(ws)
    assert means.loc[(ids[0], ordinal[2]), "n"] == 4
    with ws.engine.begin() as connection:
        connection.execute(sa.delete(Rating).where(Rating.rater == "r1"))  # one bulk delete
        connection.exec_driver_sql(f"DELETE FROM images WHERE id = {ids[1]}")  # cascades to ratings
    _assert_consistent(ws)
    assert ids[1] not in set(_means_table(ws).index.get_level_values("image_id"))
    with ws.engine.begin() as connection:
        connection.execute(sa.delete(Rating))
    assert _means_table(ws).empty
