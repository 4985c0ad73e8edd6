"""Agreement from a workspace, tidy exports and their provenance, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from itagger_lib import __version__
from itagger_lib.cli import main
from itagger_lib.db.models import Codebook, Image, Metric, Rating, Run
from itagger_lib.errors import ConfigError
from itagger_lib.export import export, read_provenance, table
from itagger_lib.ratings.frames import ratings_frame
from itagger_lib.review.reading import agreement

from .test_coefficients import KRIPPENDORFF_2011

DEFINITION = {
    "attributes": [
        {"key": "order", "type": "ordinal", "levels": [1, 2, 3, 4, 5]},
        {"key": "warmth", "type": "continuous"},
    ]
}


def fill(ws) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """12 images; Krippendorff's 2011 data as 4 human raters on ``order``; a VLM; a science run."""
    start = datetime(2026, 1, 1, 9, tzinfo=UTC)
    with ws.session() as session:
        images = [
            Image(sha256=f"{i:064x}", ext="jpg", format="JPEG", width=10, height=10, bytes=100,
                  source_name=f"img{i}.jpg", source_path=f"/in/img{i}.jpg",
                  collection="north" if i < 6 else "south", ingested_by="tester")
            for i in range(12)
        ]  # fmt: skip
        codebook = Codebook(name="study", version="1.0", content_hash="c" * 64, source_text="...",
                            definition=DEFINITION, created_by="tester")  # fmt: skip
        science = Run(kind="science", version=__version__, status="succeeded", created_by="tester",
                      params_hash="p" * 64, details={"cut_points": {"edge_density": [0.3, 0.6]}})  # fmt: skip
        vlm_run = Run(kind="vlm", version=__version__, status="succeeded", created_by="tester")
        session.add_all([*images, codebook, science, vlm_run])
        session.flush()
        rows = []
        for u, image in enumerate(images):
            for j, rater in enumerate(["ann", "bob", "cy", "dee"]):
                value = KRIPPENDORFF_2011[u, j]
                if not np.isnan(value):
                    rows.append(Rating(image_id=image.id, attribute="order", codebook_id=codebook.id,
                                       rater=rater, source="human", value=float(value), dwell_ms=5000,
                                       rated_at=start + timedelta(minutes=u)))  # fmt: skip
            rows.append(Rating(image_id=image.id, attribute="order", codebook_id=codebook.id,
                               rater="vlm:fake/model@v1", source="vlm", value=3.0, run_id=vlm_run.id,
                               rated_at=start))  # fmt: skip
            session.add(Metric(image_id=image.id, run_id=science.id, params_hash="p" * 64,
                               key="edge_density", value=u / 11, metric_version="1",
                               package_version=__version__))  # fmt: skip
        session.add_all(rows)
        session.commit()
        return {"science": science.id, "vlm": vlm_run.id, "first_image": images[0].id}


def test_agreement_from_workspace_matches_published_alpha(workspace) -> None:  # type: ignore[no-untyped-def]
    fill(workspace)
    result = agreement(workspace, n_boot=50)
    order = result.set_index("attribute").loc["order"]
    assert order["level"] == "ordinal"
    assert order["alpha"] == pytest.approx(0.815, abs=5e-4)  # the VLM is left out by default
    assert order["n_raters"] == 4
    assert result.set_index("attribute").loc["warmth", "note"] == "no ratings"
    by_collection = agreement(workspace, attributes=["order"], by="collection", n_boot=0)
    assert list(by_collection["group"]) == ["north", "south"]


def test_agreement_by_a_science_bin(workspace) -> None:  # type: ignore[no-untyped-def]
    fill(workspace)  # edge_density = u / 11 with cut points 0.3, 0.6: 4 low, 3 mid, 5 high images
    by_bin = agreement(workspace, attributes=["order"], by="bin.edge_density", n_boot=0)
    assert list(by_bin["group"]) == ["high", "low", "mid"]
    series = table(workspace)["bin.edge_density"]
    assert by_bin.equals(agreement(workspace, attributes=["order"], by=series, n_boot=0))
    assert agreement(workspace, attributes=["order"], by="edge_density", n_boot=0).equals(by_bin)
    low = by_bin.set_index("group").loc["low"]
    units = [u for u in range(4) if (~np.isnan(KRIPPENDORFF_2011[u])).sum() >= 2]
    assert low["n_units"] == len(units)
    with pytest.raises(ConfigError, match=r"by='colour': .*bins: bin.edge_density"):
        agreement(workspace, by="colour")


def test_ratings_frame_has_provenance_columns(workspace) -> None:  # type: ignore[no-untyped-def]
    ids = fill(workspace)
    frame = ratings_frame(workspace, raters=["ann", "vlm:fake/model@v1"])
    assert set(frame["rater"]) == {"ann", "vlm:fake/model@v1"}
    assert len(frame) == 9 + 12
    assert {"sha256", "source", "codebook_version", "run_id", "dwell_ms", "rated_at"} <= set(frame.columns)
    assert set(frame.loc[frame["source"] == "vlm", "run_id"]) == {ids["vlm"]}
    assert str(frame["rated_at"].dt.tz) == "UTC"


def test_table_joins_metrics_bins_and_mean_ratings(workspace) -> None:  # type: ignore[no-untyped-def]
    ids = fill(workspace)
    per_image = table(workspace)
    first = per_image.loc[ids["first_image"]]
    assert first["rating.order.median"] == 1.0  # ann, bob and dee gave 1: order is ordinal
    assert first["rating.order.n"] == 3
    assert first["vlm.order.answer"] == 3.0
    # unit 5: 1, 2, 3, 4 (four raters): the median is the midpoint of the middle two
    assert per_image.loc[ids["first_image"] + 5, "rating.order.median"] == 2.5
    assert per_image.loc[ids["first_image"] + 11, "rating.order.n"] == 1  # 3 by bob alone
    assert first["bin.edge_density"] == "low"
    assert per_image.attrs["run_id"] == ids["science"]
    assert per_image.attrs["vlm"]["rater"] == "vlm:fake/model@v1"
    assert per_image.attrs["columns"]["rating.order.median"]["level"] == "ordinal"


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_export_tables_carry_provenance(workspace, tmp_path: Path, fmt: str) -> None:  # type: ignore[no-untyped-def]
    ids = fill(workspace)
    paths = export(workspace, tmp_path / "out", format=fmt)
    assert [p.name for p in paths] == [f"ratings.{fmt}", f"table.{fmt}"]
    provenance = read_provenance(paths[0])
    assert provenance["package_version"] == __version__
    assert provenance["run_ids"] == sorted([ids["science"], ids["vlm"]])
    assert provenance["codebooks"][0]["version"] == "1.0"
    assert read_provenance(paths[1])["run_ids"] == provenance["run_ids"]
    if fmt == "parquet":
        ratings = pd.read_parquet(paths[0])
        assert b"itagger" in pq.read_schema(paths[1]).metadata
        # the per-image file (ratings streamed once, means kept on the way) is ws.table()'s frame
        expected = table(workspace)
        pd.testing.assert_frame_equal(pd.read_parquet(paths[1]), expected, check_dtype=False)
        assert expected.filter(like="rating.").notna().any().all()
    else:
        ratings = pd.read_csv(paths[0])
    assert len(ratings) == 41 + 12  # 41 human values (40 pairable + 1 lone) and 12 VLM


def test_bn_export_uses_stored_cut_points(workspace, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ids = fill(workspace)
    bn_csv, codebook_json = export(workspace, tmp_path / "bn", format="bn")
    states = (
        pd.read_csv(bn_csv, keep_default_na=False, dtype=str).astype({"image_id": int}).set_index("image_id")
    )
    document = json.loads(codebook_json.read_text())
    variables = {v["name"]: v for v in document["variables"]}
    assert variables["edge_density"] == {
        "name": "edge_density", "source": "metric", "metric": "edge_density", "statistic": "value",
        "states": ["low", "mid", "high"], "cut_points": [0.3, 0.6], "cut_source": "stored",
        "science_run_id": ids["science"], "rule": "x <= low → low; low < x <= high → mid; x > high → high",
    }  # fmt: skip
    # order is ordinal (levels 1-5): its states are the scale's levels, never tertiles
    order = variables["rating.order.median_low"]
    assert (order["source"], order["statistic"], order["states"]) == (
        "rating",
        "median_low",
        ["1", "2", "3", "4", "5"],
    )
    assert order["cut_points"] is None
    assert states.loc[ids["first_image"] + 5, "rating.order.median_low"] == "2"  # 1, 2, 3, 4: lower median
    assert variables["vlm.order.answer"]["rater"] == "vlm:fake/model@v1"
    assert set(states["vlm.order.answer"]) == {"3"}
    expected = ["low" if u / 11 <= 0.3 else "mid" if u / 11 <= 0.6 else "high" for u in range(12)]
    assert list(states["edge_density"]) == expected
    assert states.index[0] == ids["first_image"]
    assert read_provenance(bn_csv)["science_run_id"] == ids["science"]


def test_export_rejects_unknown_format(workspace, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="unknown export format 'xlsx'"):
        export(workspace, tmp_path, format="xlsx")


def test_cli_export_writes_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from itagger_lib import Workspace

    monkeypatch.setenv("ITAGGER_USER", "tester")
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    with Workspace(database_url=url, store=tmp_path / "store", home=tmp_path / "home") as ws:
        fill(ws)
    code = main(["--database-url", url, "--store", str(tmp_path / "store"), "--home", str(tmp_path / "home"),
                 "export", "--format", "csv", str(tmp_path / "out")])  # fmt: skip
    assert code == 0
    assert (tmp_path / "out" / "ratings.csv").exists()
    assert (tmp_path / "out" / "table.csv.json").exists()
    assert "ratings.csv" in capsys.readouterr().out


def test_workspace_methods_reach_review_and_export(workspace, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fill(workspace)
    assert workspace.agreement(n_boot=0).set_index("attribute").loc["order", "alpha"] == pytest.approx(
        0.815, abs=5e-4
    )
    assert len(workspace.ratings(sources=["vlm"])) == 12
    assert "rating.order.median" in workspace.table().columns
    assert [p.name for p in workspace.export(tmp_path / "x", format="bn")] == ["bn.csv", "bn_codebook.json"]


def test_vlm_agreement_labels_models_by_prompt_version(workspace) -> None:  # type: ignore[no-untyped-def]
    from itagger_lib.db.models import VLMCall
    from itagger_lib.review.reading import vlm_agreement

    fill(workspace)
    with workspace.session() as session:
        codebook_id = session.query(Codebook.id).scalar()
        for unit, image in enumerate(session.query(Image).order_by(Image.id)):
            call = VLMCall(
                cache_key=image.sha256, provider="openai", model="gpt-x", prompt_hash="h" * 64,
                prompt_version="p2", image_id=image.id, image_sha256=image.sha256, status="ok",
            )  # fmt: skip
            session.add(call)
            session.flush()
            consensus = float(np.nanmedian(KRIPPENDORFF_2011[unit]))
            session.add(
                Rating(
                    image_id=image.id, attribute="order", codebook_id=codebook_id, rater="openai/gpt-x",
                    source="vlm", value=consensus, vlm_call_id=call.id,
                )
            )  # fmt: skip
        session.commit()
    table = vlm_agreement(workspace).set_index("vlm")
    assert set(table.index) == {"vlm:fake/model@v1", "vlm:openai/gpt-x@p2"}
    assert table.loc["vlm:openai/gpt-x@p2", "n_units"] == 12
    assert table.loc["vlm:openai/gpt-x@p2", "human_alpha"] == pytest.approx(0.815, abs=5e-4)
    # a VLM answering the human median agrees better than one always answering 3
    assert table.loc["vlm:openai/gpt-x@p2", "delta"] > table.loc["vlm:fake/model@v1", "delta"]
    assert (
        table.loc["vlm:openai/gpt-x@p2", "vlm_pairwise_alpha"]
        > table.loc["vlm:openai/gpt-x@p2", "human_pairwise_alpha"]
    )
    assert agreement(workspace, n_boot=0).set_index("attribute").loc["order", "n_raters"] == 4


def test_export_ratings_streams_batches_with_provenance(workspace, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import pyarrow.parquet as pq

    from itagger_lib.export import export_ratings
    from itagger_lib.ratings.arrow import SCHEMA as _SCHEMA
    from itagger_lib.ratings.frames import iter_ratings_arrow

    ids = fill(workspace)
    with workspace.engine.begin() as connection:  # an image outside any collection
        connection.exec_driver_sql(
            "UPDATE images SET collection = NULL WHERE id = (SELECT min(id) FROM images)"
        )
    expected = ratings_frame(workspace)
    assert expected["collection"].isna().any() and expected["collection"].notna().any()
    batches = list(iter_ratings_arrow(workspace, batch_rows=7, parallel=2))
    if workspace.engine.dialect.name == "postgresql":
        assert len(batches) > 2  # several COPY ranges, yielded in rating order
    path = export_ratings(workspace, tmp_path / "ratings.parquet")
    # the writer is fed dictionary columns; the file reads back as the documented types
    assert pq.read_schema(path).remove_metadata().equals(_SCHEMA)

    def plain(frame: pd.DataFrame) -> pd.DataFrame:  # one missing value, Python objects
        return frame.astype(object).where(frame.notna(), None)

    pd.testing.assert_frame_equal(plain(pd.read_parquet(path)), plain(expected))
    written = pq.read_table(path).to_pandas()
    assert written["rating_id"].tolist() == expected["rating_id"].tolist()
    assert written["rater"].tolist() == expected["rater"].tolist()
    assert written["sha256"].tolist() == expected["sha256"].tolist()
    assert sum(b.num_rows for b in batches) == len(expected)
    provenance = read_provenance(path)
    assert provenance["package_version"] == __version__
    assert provenance["run_ids"] == sorted({ids["vlm"], ids["science"]})
    assert [c["version"] for c in provenance["codebooks"]] == ["1.0"]
    assert not list(tmp_path.glob(".*partial"))
