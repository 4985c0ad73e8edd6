"""Near-duplicate control end to end: pHash at ingest, backfill, groups, splits, exports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from itagger_lib.comparisons.phashes import file_phash, to_unsigned
from itagger_lib.designs import phash, read_grey_reduced
from itagger_lib.errors import ArgumentError
from tests.comparisons.conftest import SCENES

ROOT = Path(__file__).resolve().parents[2]


def _by_name(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.reset_index().set_index("source_name")


def test_ingest_stores_the_phash_of_each_file(workspace, scene_dir: Path) -> None:  # type: ignore[no-untyped-def]
    workspace.ingest(scene_dir, progress=False)
    images = _by_name(workspace.images())
    assert len(images) == len(SCENES)
    for name in SCENES:
        stored = int(images.loc[name, "phash"])
        assert to_unsigned(stored) == phash(read_grey_reduced(scene_dir / name))
        assert stored == file_phash(scene_dir / name)


def test_near_duplicates_groups_the_variants_of_a_scene(workspace, scene_dir: Path) -> None:  # type: ignore[no-untyped-def]
    workspace.ingest(scene_dir, progress=False)
    groups = _by_name(workspace.near_duplicates())
    assert list(groups.columns[:3]) == ["image_id", "group", "group_size"]
    for name, k in SCENES.items():
        same = [other for other, j in SCENES.items() if j == k]
        assert groups.loc[name, "group_size"] == len(same), name
        assert {groups.loc[o, "group"] for o in same} == {groups.loc[name, "group"]}
    assert groups["group"].nunique() == 8
    assert groups.iloc[0]["group_size"] == 3  # largest first
    exact = _by_name(workspace.near_duplicates(threshold=0))
    assert exact.loc["s0_q50.jpg", "group"] != exact.loc["s1.jpg", "group"]
    with pytest.raises(ArgumentError, match="threshold must be a whole number of bits from 0 to 11"):
        workspace.near_duplicates(threshold=12)


def _forget_hashes(workspace) -> None:  # type: ignore[no-untyped-def]
    with workspace.engine.begin() as connection:
        connection.execute(sa.text("UPDATE images SET phash = NULL"))


def test_first_use_fills_missing_hashes(workspace, scene_dir: Path) -> None:  # type: ignore[no-untyped-def]
    workspace.ingest(scene_dir, progress=False)
    before = _by_name(workspace.images())["phash"]
    _forget_hashes(workspace)
    assert workspace.images()["phash"].isna().all()
    groups = workspace.near_duplicates()
    assert groups["group"].nunique() == 8
    after = _by_name(workspace.images())["phash"]
    assert (after == before).all()
    assert (workspace.runs("phash")["status"] == "succeeded").all()


def test_backfill_command_fills_hashes_and_reports_unreadable_files(workspace, scene_dir: Path) -> None:  # type: ignore[no-untyped-def]
    workspace.ingest(scene_dir, progress=False)
    before = _by_name(workspace.images())["phash"]
    _forget_hashes(workspace)
    lost = int(_by_name(workspace.images()).loc["s3.jpg", "id"])
    workspace.image_path(lost).unlink()  # the store lost one file
    url = workspace.engine.url.render_as_string(hide_password=False)
    command = [
        sys.executable, "-m", "itagger_lib.cli", "--database-url", url,
        "--store", str(workspace.store.root), "images", "phash",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    assert "pHash computed for 10 image(s), 1 failed" in done.stdout
    after = _by_name(workspace.images())["phash"]
    assert after.isna().sum() == 1 and pd.isna(after["s3.jpg"])
    assert (after.drop("s3.jpg") == before.drop("s3.jpg")).all()
    failures = workspace.failures(int(workspace.runs("phash").index.max()))
    assert len(failures) == 1 and int(failures.iloc[0]["image_id"]) == lost
    assert "cannot be opened" in failures.iloc[0]["reason"]
    # nothing stored is lost: a second run computes nothing new and fails again on the one file
    again = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    assert again.returncode == 1 and "pHash computed for 0 image(s), 1 failed" in again.stdout


def test_split_keeps_every_group_on_one_side(workspace, scene_dir: Path) -> None:  # type: ignore[no-untyped-def]
    workspace.ingest(scene_dir, progress=False)
    for seed in range(6):
        split = workspace.split(test_size=0.3, seed=seed)
        assert set(split["split"]) == {"train", "test"}
        assert (split.groupby("group")["split"].nunique() == 1).all()
        assert abs((split["split"] == "test").sum() - 0.3 * len(SCENES)) <= 3  # within one group
        assert split.equals(workspace.split(test_size=0.3, seed=seed))
    leaks = 0
    for seed in range(6):
        independent = workspace.split(test_size=0.3, seed=seed, by="image")
        names = _by_name(independent)["split"]
        leaks += names[["s0.jpg", "s0_q50.jpg", "s0_half.jpg"]].nunique() > 1
    assert leaks > 0  # what by="near_duplicate" prevents
    with pytest.raises(ArgumentError, match="by must be one of"):
        workspace.split(by="folder")
    with pytest.raises(ArgumentError, match="test_size"):
        workspace.split(test_size=1.5)


def test_exports_carry_the_group(workspace, scene_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    workspace.ingest(scene_dir, progress=False)
    table = workspace.table().set_index("source_name")
    groups = table["near_duplicate_group"]
    assert groups["s0.jpg"] == groups["s0_q50.jpg"] == groups["s0_half.jpg"]
    assert groups["s1.jpg"] == groups["s1_bright.jpg"] != groups["s0.jpg"]
    assert groups.nunique() == 8
    files = workspace.export(tmp_path / "out", format="csv")
    written = pd.read_csv(next(f for f in files if f.name == "table.csv"))
    assert written.set_index("source_name")["near_duplicate_group"].equals(groups.astype("int64"))


def test_downgrade_keeps_images_and_what_hangs_on_them(workspace, scene_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """0006_studies down and up again: images.phash goes and comes back; no image, rating or
    source row is lost (a SQLite batch rebuild of ``images`` would cascade-delete them)."""
    from itagger_lib.db.migrate import downgrade, upgrade

    workspace.ingest(scene_dir, progress=False)
    workspace.add_ratings(
        pd.DataFrame(
            {
                "image": workspace.images().index[:3],
                "rater": "ann",
                "attribute": "coherence",
                "value": [3, 4, 5],
            }
        )
    )

    def counts() -> tuple[int, int, int]:
        with workspace.engine.connect() as connection:
            return tuple(  # type: ignore[return-value]
                connection.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                for t in ("images", "image_sources", "ratings")
            )

    before = counts()
    assert before == (11, 11, 3)
    downgrade(workspace.engine, "0005_roles")
    assert counts() == before
    with workspace.engine.connect() as connection:
        assert "phash" not in {c["name"] for c in sa.inspect(connection).get_columns("images")}
    upgrade(workspace.engine)
    assert counts() == before
    assert workspace.images()["phash"].isna().all()
    assert workspace.near_duplicates()["group"].nunique() == 8  # the first use fills them again
