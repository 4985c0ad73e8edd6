"""Importing ratings collected elsewhere: every problem listed, partial imports recorded as
failures, re-imports refused, images found by file name, the CLI (SQLite and Postgres)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from itagger_lib.cli import main
from itagger_lib.db.models import Rating
from itagger_lib.errors import ImageNotFoundError, RatingError
from itagger_lib.ratings.imports import add_ratings


def _count(ws: Any) -> int:
    with ws.engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(Rating)).scalar_one())


def _mixed(ids: list[int]) -> pd.DataFrame:
    """Two good rows, three bad ones of different kinds, one blank (unanswered) item."""
    return pd.DataFrame(
        {
            "image_id": [ids[0], ids[1], ids[2], 999_999, ids[3], ids[4]],
            "attribute": ["calm", "calm", "calm", "calm", "nope", "calm"],
            "value": [2, 4, 9, 1, 1, float("nan")],
            "rater": ["ann", "ann", "ann", "ann", "ann", "ann"],
        }
    )


def test_every_bad_row_is_listed_and_nothing_is_stored(tagged_ws: Any) -> None:
    ids = tagged_ws.images().index.tolist()
    with pytest.raises(RatingError) as err:
        add_ratings(tagged_ws, _mixed(ids))
    message = str(err.value)
    assert "3 of 6 ratings rows cannot be imported; nothing was stored" in message
    assert (
        f"row 2 (image {ids[2]}): attribute 'calm': value 9 is not allowed; give one of 1, 2, 3, 4, 5"
        in message
    )
    assert "row 3 (image 999999): image id 999999 is not in this workspace" in message
    assert "row 4" in message and "'nope' is not in codebook tagtest 1" in message
    assert "errors='skip'" in message
    assert _count(tagged_ws) == 0
    assert tagged_ws.runs("import").empty  # a refused import leaves no run behind


def test_skip_stores_the_valid_rows_and_records_the_rest_as_failures(tagged_ws: Any) -> None:
    ids = tagged_ws.images().index.tolist()
    report = add_ratings(tagged_ws, _mixed(ids), errors="skip", name="forms.csv")
    assert (report.rows, report.stored, report.blank, len(report.problems)) == (6, 2, 1, 3)
    assert int(report) == 2 and report.skipped == 4
    assert f"import run {report.run_id}: 2 of 6 rows stored" in str(report)
    assert repr(report) == f"<ImportReport {report}>"  # a notebook shows the summary, not 3 problems
    ratings = tagged_ws.ratings()
    assert sorted(ratings["value"]) == [2.0, 4.0]
    assert set(ratings["run_id"]) == {report.run_id}  # provenance: the import run
    run = tagged_ws.runs("import").iloc[0]
    assert (
        run["status"] == "partial" and run["n_done"] == 2 and run["n_failed"] == 3 and run["n_skipped"] == 1
    )
    failures = tagged_ws.failures(report.run_id)
    assert len(failures) == 3
    assert any(
        "row 2" in i and "value 9" in r for i, r in zip(failures["input"], failures["reason"], strict=True)
    )


def test_the_same_rows_again_are_refused_skipped_or_appended(tagged_ws: Any) -> None:
    ids = tagged_ws.images().index.tolist()
    frame = pd.DataFrame({"image_id": ids[:3], "attribute": "calm", "value": [1, 2, 3], "rater": "bo"})
    first = add_ratings(tagged_ws, frame)
    assert first.stored == 3
    with pytest.raises(
        RatingError,
        match=rf"3 of 3 valid ratings rows were already imported \(run {first.run_id} on .* by tester\)",
    ):
        add_ratings(tagged_ws, frame.iloc[::-1])  # row order does not matter
    again = add_ratings(tagged_ws, frame, if_imported="skip")
    assert again.already_imported and again.run_id == first.run_id and again.stored == 0
    assert str(again) == f"already imported as run {first.run_id}: nothing stored"
    assert _count(tagged_ws) == 3 and len(tagged_ws.runs("import")) == 1
    changed = frame.assign(value=[1, 2, 4])  # one answer differs: one new row
    with pytest.raises(
        RatingError, match=r"2 of 3 valid ratings rows were already imported.*only the 1 new rows"
    ):
        add_ratings(tagged_ws, changed)
    report = add_ratings(tagged_ws, changed, if_imported="skip")
    assert (report.stored, report.duplicates, report.skipped) == (1, 2, 2)
    assert "1 of 3 rows stored, 2 already imported skipped" in str(report)
    assert add_ratings(tagged_ws, frame, if_imported="append").stored == 3
    assert _count(tagged_ws) == 7
    with pytest.raises(RatingError, match="if_imported='later'"):
        add_ratings(tagged_ws, frame, if_imported="later")


def test_a_cumulative_survey_export_stores_only_the_new_respondents(tagged_ws: Any) -> None:
    """A survey tool's export of week 2 repeats week 1's answers: only the new ones go in,
    times included where the table has them; a repeat inside one table is two ratings."""
    ids = tagged_ws.images().index.tolist()

    def answers(rater: str, values: list[int], hour: int) -> list[dict[str, Any]]:
        return [
            {
                "image_id": i,
                "rater": rater,
                "attribute": "calm",
                "value": v,
                "rated_at": f"2026-03-0{hour} 10:00",
            }
            for i, v in zip(ids[:3], values, strict=True)
        ]

    week1 = pd.DataFrame(answers("p1", [1, 2, 3], 1) + answers("p2", [2, 2, 2], 1))
    assert add_ratings(tagged_ws, week1).stored == 6
    week2 = pd.DataFrame(
        answers("p1", [1, 2, 3], 1) + answers("p2", [2, 2, 2], 1) + answers("p3", [5, 4, 3], 2)
    )
    with pytest.raises(RatingError, match="6 of 9 valid ratings rows were already imported"):
        add_ratings(tagged_ws, week2)
    report = add_ratings(tagged_ws, week2, if_imported="skip")
    assert (report.stored, report.duplicates) == (3, 6)
    assert sorted(tagged_ws.ratings()["rater"].value_counts().items()) == [("p1", 3), ("p2", 3), ("p3", 3)]
    later = pd.DataFrame(answers("p1", [1, 2, 3], 4))  # the same answers at another time: a retest
    assert add_ratings(tagged_ws, later).stored == 3
    repeated = pd.DataFrame({"image_id": [ids[5]] * 2, "attribute": "calm", "value": 4, "rater": "p9"})
    assert add_ratings(tagged_ws, repeated).stored == 2  # within one table both rows count
    assert add_ratings(tagged_ws, repeated, if_imported="skip").already_imported


def test_images_by_file_name_hash_prefix_and_clear_misses(tagged_ws: Any) -> None:
    images = tagged_ws.images()
    names = images["source_name"]
    first, second = images.index[0], images.index[1]
    frame = pd.DataFrame(
        {
            "image": [names.loc[first], images.loc[second, "sha256"][:12].upper()],
            "attribute": "setting",
            "value": ["interior", "exterior"],
            "rater": " ann ",
            "rated_at": ["2026-03-01 14:30:00", "2026-03-01T15:00:00+01:00"],
            "note": ["n/a", float("nan")],
        }
    )
    assert add_ratings(tagged_ws, frame).stored == 2
    ratings = tagged_ws.ratings().sort_values("image_id")
    assert list(ratings["image_id"]) == sorted([first, second])
    assert set(ratings["rater"]) == {"ann"}
    by_image = ratings.set_index("image_id")
    assert by_image.loc[first, "rated_at"] == pd.Timestamp("2026-03-01 14:30", tz="UTC")  # naive is UTC
    assert by_image.loc[second, "rated_at"] == pd.Timestamp("2026-03-01 14:00", tz="UTC")
    assert by_image.loc[first, "note"] == "n/a" and pd.isna(by_image.loc[second, "note"])
    with pytest.raises(
        ImageNotFoundError, match=r"row 0 \(image 'missing.jpg'\).*file name it was ingested from"
    ):
        add_ratings(tagged_ws, frame.assign(image=["missing.jpg", "missing.jpg"]))
    with pytest.raises(RatingError, match=r"row 1 .*rated_at 'yesterday' is not a date"):
        add_ratings(tagged_ws, frame.assign(rated_at=["2026-03-02", "yesterday"]))


def test_cli_import_and_agreement(tagged_ws: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = tagged_ws.images()
    rows = [
        {"image": name, "rater": rater, "attribute": "calm", "value": (k + j) % 5 + 1}
        for k, name in enumerate(images["source_name"])
        for j, rater in enumerate(["ann", "bob"])
    ]
    good = tmp_path / "survey.csv"
    pd.DataFrame(rows).to_csv(good, index=False)
    workspace = [
        "--database-url",
        tagged_ws.engine.url.render_as_string(hide_password=False),
        "--store",
        str(tagged_ws.store.root),
        "--home",
        str(tagged_ws.home),
    ]
    assert main([*workspace, "ratings", "import", str(good)]) == 0
    assert _count(tagged_ws) == 2 * len(images)
    assert main([*workspace, "ratings", "import", str(good)]) == 1  # already imported
    err = capsys.readouterr().err
    assert "Give --if-imported skip to store nothing" in err and "if_imported=" not in err
    assert main([*workspace, "ratings", "import", str(good), "--if-imported", "skip"]) == 0
    semicolons = tmp_path / "excel.csv"  # a spreadsheet's CSV in many locales, with a BOM
    semicolons.write_text(pd.DataFrame(rows).to_csv(index=False, sep=";"), encoding="utf-8-sig")
    capsys.readouterr()
    assert main([*workspace, "ratings", "import", str(semicolons), "--if-imported", "skip"]) == 0
    assert "already imported as run" in capsys.readouterr().out  # read as the same rows
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("foo,bar\n1,2\n")
    assert main([*workspace, "ratings", "import", str(wrong)]) == 1
    err = capsys.readouterr().err
    assert (
        "lacks column(s) ['image', 'rater', 'attribute', 'value']" in err and "(its columns: foo, bar)" in err
    )
    bad = tmp_path / "bad.csv"
    new = [{**row, "rater": "cy"} for row in rows[:2]]
    pd.DataFrame([*new, {"image": "nope.jpg", "rater": "cy", "attribute": "calm", "value": 3}]).to_csv(
        bad, index=False
    )
    capsys.readouterr()
    assert main([*workspace, "ratings", "import", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: 1 of 3 ratings rows cannot be imported" in err and "give --errors skip" in err
    assert "errors='skip'" not in err
    assert "line 4 (image 'nope.jpg')" in err  # as the spreadsheet numbers it: header line 1
    assert main([*workspace, "ratings", "import", str(bad), "--errors", "skip"]) == 0
    captured = capsys.readouterr()
    assert "2 of 3 rows stored, 1 invalid skipped" in captured.out
    assert "skipped line 4 (image 'nope.jpg')" in captured.err
    run_id = int(re.search(r"import run (\d+)", captured.out).group(1))
    assert main([*workspace, "failures", str(run_id)]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].split() == ["run_id", "input", "image_id", "file", "reason"]
    assert f"{run_id}  line 4: image 'nope.jpg'" in listed[1] and "nope.jpg" in listed[1]
    assert main([*workspace, "ratings", "import", str(tmp_path / "forms.xlsx")]) == 1
    out = tmp_path / "agreement.csv"
    assert (
        main([*workspace, "ratings", "agreement", "--attributes", "calm", "--n-boot", "0", "--out", str(out)])
        == 0
    )
    table = pd.read_csv(out).set_index("attribute")
    expected = tagged_ws.agreement(attributes=["calm"], n_boot=0).set_index("attribute")
    assert table.loc["calm", "n_units"] == len(images) == expected.loc["calm", "n_units"]
    assert table.loc["calm", "alpha"] == pytest.approx(expected.loc["calm", "alpha"])


def test_cli_errors_name_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = ["--home", str(tmp_path / "home")]
    assert main([*home, "ratings", "import", str(tmp_path / "forms.xlsx")]) == 1
    assert (
        "forms.xlsx: cannot read .xlsx; give a .csv, .tsv, .parquet or .json file" in capsys.readouterr().err
    )
    assert main([*home, "ratings", "import", str(tmp_path / "gone.csv")]) == 1
    assert "gone.csv: no such file" in capsys.readouterr().err
