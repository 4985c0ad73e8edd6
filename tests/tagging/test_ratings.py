"""Write-through ratings and the import of external ratings."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from itagger_lib.db.models import Rating
from itagger_lib.errors import ImageNotFoundError, RatingError
from itagger_lib.ratings.imports import add_ratings
from itagger_lib.ratings.queue import next_assignment
from itagger_lib.ratings.recording import rater_ratings, record_rating
from itagger_lib.ratings.studies import create_study


def _rows(ws: Any) -> list[Any]:
    with ws.engine.connect() as c:
        return c.execute(sa.select(Rating).order_by(Rating.id)).mappings().all()


def test_record_rating_stores_provenance_and_updates(tagged_ws: Any) -> None:
    info = create_study(tagged_ws, "s", raters_per_image=1, mode="assisted")
    item = next_assignment(tagged_ws, "s", "alice")
    rid = record_rating(tagged_ws, item, "calm", 4, "alice", dwell_ms=1234, session_id="sess", complete=False)
    # visible from another connection right away (committed)
    (row,) = _rows(tagged_ws)
    assert row["id"] == rid and row["value"] == 4.0 and row["mode"] == "assisted" and row["dwell_ms"] == 1234
    assert row["study_id"] == info.id and row["assignment_id"] == item.id and row["position"] == 1
    assert (
        row["codebook_id"] == info.codebook_id and row["session_id"] == "sess" and row["updated_at"] is None
    )
    assert row["source"] == "human" and not row["is_repeat"] and not row["is_gold"]
    # changing the answer updates the same row
    assert record_rating(tagged_ws, item, "calm", 2, "alice", dwell_ms=50) == rid
    (row,) = _rows(tagged_ws)
    assert row["value"] == 2.0 and row["updated_at"] is not None and row["dwell_ms"] == 50
    record_rating(tagged_ws, item, "setting", "exterior", "alice")
    assert rater_ratings(tagged_ws, item.id, "alice") == {"calm": 2, "setting": "exterior"}
    with pytest.raises(RatingError, match="calm"):
        record_rating(tagged_ws, item, "calm", 9, "alice")
    with pytest.raises(RatingError, match="belongs to"):
        record_rating(tagged_ws, item, "calm", 1, "mallory")


def test_add_ratings_demo_format_and_image_prefix(tagged_ws: Any) -> None:
    images = tagged_ws.images()
    ids = images.index.tolist()
    frame = pd.DataFrame(
        {
            "image_id": ids[:3],
            "attribute": ["calm", "calm", "test_binary"],
            "value": [1, 5, 0],
            "rater": ["sim:r1"] * 3,
        }
    )
    assert tagged_ws.add_ratings(frame).stored == 3
    by_sha = pd.DataFrame(
        {
            "image": [images.sha256.iloc[4][:10]],
            "attribute": ["setting"],
            "value": ["interior"],
            "rater": ["x"],
        }
    )
    assert add_ratings(tagged_ws, by_sha).stored == 1
    rows = _rows(tagged_ws)
    assert [r["source"] for r in rows] == ["import"] * 4
    assert rows[3]["image_id"] == ids[4] and rows[3]["value_text"] == "interior" and rows[3]["value"] == 0.0


def test_add_ratings_errors_name_row_image_attribute_allowed(tagged_ws: Any) -> None:
    ids = tagged_ws.images().index.tolist()
    bad_value = pd.DataFrame(
        {"image_id": ids[:2], "attribute": ["calm", "calm"], "value": [3, 8], "rater": "r"}
    )
    with pytest.raises(RatingError) as err:
        add_ratings(tagged_ws, bad_value)
    message = str(err.value)
    assert (
        "row 1" in message
        and f"image {ids[1]}" in message
        and "'calm'" in message
        and "1, 2, 3, 4, 5" in message
    )
    bad_attr = pd.DataFrame({"image_id": [ids[0]], "attribute": ["nope"], "value": [1], "rater": "r"})
    with pytest.raises(RatingError, match=r"row 0.*'nope'.*calm"):
        add_ratings(tagged_ws, bad_attr)
    with pytest.raises(ImageNotFoundError, match="row 0"):
        add_ratings(
            tagged_ws,
            pd.DataFrame({"image": ["deadbeefdead"], "attribute": ["calm"], "value": [1], "rater": "r"}),
        )
    with pytest.raises(RatingError, match="lacks column"):
        add_ratings(tagged_ws, pd.DataFrame({"image": [ids[0]], "value": [1]}))
    assert _rows(tagged_ws) == []  # nothing half-written
