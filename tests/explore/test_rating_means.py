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
        Rating.source.in_(("human", "import")),
        Rating.value.is_not(None),
        Rating.is_repeat.is_(False),  # first presentations, as the per-image table
        Rating.repeat_index == 0,
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


def test_upgrading_a_database_with_ratings(database_url: str) -> None:
    """0003_levels on a database written by 0001: statistics filled in, repeats no longer
    counted, VLM raters renamed to one name; the downgrade puts 0001's back."""
    from types import SimpleNamespace

    from itagger_lib.db import make_engine
    from itagger_lib.db.migrate import downgrade, upgrade

    engine = make_engine(database_url)
    upgrade(engine, "0001")
    rng = random.Random(3)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO codebooks (id, name, version, content_hash, source_text, definition, created_at, "
            "created_by) VALUES (1, 'c', '1', 'h', '', '{}', CURRENT_TIMESTAMP, 't')"
        )
        for i in range(1, 7):
            connection.exec_driver_sql(
                "INSERT INTO images (id, sha256, ext, format, width, height, bytes, source_name, "
                "source_path, ingested_at, ingested_by) VALUES "
                f"({i}, '{i:064x}', 'jpg', 'JPEG', 1, 1, 1, 'x', '/{i}', CURRENT_TIMESTAMP, 't')"
            )
        connection.exec_driver_sql(
            "INSERT INTO vlm_calls (id, cache_key, provider, model, prompt_hash, prompt_version, "
            "image_sha256, parameters, repeat_index, status, reserved_usd, cost_usd, attempts, "
            "created_at) VALUES "
            "(1, 'k', 'openai', 'm', 'h', '3', 'x', '{}', 0, 'ok', 0, 0, 1, CURRENT_TIMESTAMP)"
        )
        rows = [
            {"image_id": i, "attribute": a, "rater": f"r{k}", "source": "human",
             "value": float(rng.randint(1, 5)), "is_repeat": k == 3, "repeat_index": 0}
            for i in range(1, 7) for a in ("calm", "order") for k in range(4)
        ]  # fmt: skip
        rows += [{"image_id": i, "attribute": "calm", "rater": "vlm:openai/m", "source": "vlm", "value": 2.0,
                  "is_repeat": False, "repeat_index": 0, "vlm_call_id": 1} for i in range(1, 7)]  # fmt: skip
        rows += [{"image_id": 1, "attribute": "calm", "rater": "gpt", "source": "vlm", "value": 2.0,
                  "is_repeat": False, "repeat_index": 0, "vlm_call_id": None}]  # fmt: skip
        for row in rows:
            connection.execute(
                sa.insert(Rating).values(codebook_id=1, mode="blind", is_gold=False, rated_at=utcnow(), **row)
            )
    with engine.connect() as connection:  # 0001 counted the repeats
        assert connection.execute(sa.text("SELECT sum(n) FROM rating_means")).scalar() == 6 * 2 * 4
    upgrade(engine)
    ws = SimpleNamespace(engine=engine)
    _assert_consistent(ws)
    assert int(_means_table(ws)["n"].sum()) == 6 * 2 * 3
    with engine.connect() as connection:
        raters = set(connection.execute(sa.select(Rating.rater).where(Rating.source == "vlm")).scalars())
    assert raters == {"vlm:openai/m@3", "vlm:gpt"}
    downgrade(engine, "0001")
    with engine.connect() as connection:
        raters = set(
            connection.execute(sa.text("SELECT DISTINCT rater FROM ratings WHERE source = 'vlm'")).scalars()
        )
        assert connection.execute(sa.text("SELECT sum(n) FROM rating_means")).scalar() == 6 * 2 * 4
    assert raters == {"vlm:openai/m", "vlm:gpt"}
    engine.dispose()
