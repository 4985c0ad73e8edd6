"""Ingest: formats, idempotence, duplicates, orientation, bad input — on SQLite and Postgres."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from PIL import Image as PILImage

from itagger_lib.db.models import Image, ImageSource, RunFailure
from itagger_lib.samples import facade, write_samples


def _count(ws, model) -> int:  # type: ignore[no-untyped-def]
    with ws.engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()


def test_ingest_sample_formats_and_is_idempotent(workspace, sample_dir: Path) -> None:
    report = workspace.ingest(sample_dir, progress=False)
    assert len(report.added) == 12 and not report.failed
    images = workspace.images()
    assert set(images["format"]) == {"JPEG", "PNG", "WEBP", "TIFF", "BMP"}
    for _, row in images.iterrows():
        path = workspace.store.path_for(row["sha256"], row["ext"])
        assert path.is_file()
        assert path.relative_to(workspace.store.root).parts[:2] == (
            row["sha256"][:2],
            row["sha256"][2:4],
        )
    again = workspace.ingest(sample_dir, progress=False)
    assert again.added == [] and len(again.present) == 12
    assert _count(workspace, Image) == 12
    assert _count(workspace, ImageSource) == 12
    runs = workspace.runs("ingest")
    assert list(runs["status"]) == ["succeeded", "succeeded"]


def test_exif_orientation_gives_displayed_size(workspace, sample_dir: Path) -> None:
    workspace.ingest(sample_dir / "facade_005.jpg", progress=False)
    row = workspace.images().iloc[0]
    # Stored rotated (600 wide, 800 high) with orientation 6: displayed 800 x 600.
    assert (row["width"], row["height"]) == (800, 600)
    from itagger_lib.imaging import load_rgb

    assert load_rgb(workspace.image_path(int(workspace.images().index[0]))).shape == (600, 800, 3)


def test_duplicate_bytes_under_two_names_are_one_image(workspace, tmp_path: Path, sample_dir: Path) -> None:
    folder = tmp_path / "dups"
    folder.mkdir()
    shutil.copy(sample_dir / "facade_000.jpg", folder / "a.jpg")
    shutil.copy(sample_dir / "facade_000.jpg", folder / "b.jpg")
    report = workspace.ingest(folder, progress=False)
    assert len(report.added) == 1 and len(report.present) == 1
    assert _count(workspace, Image) == 1
    with workspace.engine.connect() as connection:
        names = sorted(connection.execute(sa.select(ImageSource.source_name)).scalars())
    assert names == ["a.jpg", "b.jpg"]


def _bad_inputs(folder: Path, good: Path) -> dict[str, str]:
    """Create every kind of bad input; return file name -> expected words in the reason."""
    folder.mkdir()
    shutil.copy(good, folder / "good.jpg")
    (folder / "empty.jpg").write_bytes(b"")
    data = good.read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "notes.png").write_text("this is not an image")
    PILImage.fromarray(facade(64, 48)).save(folder / "anim.gif")
    PILImage.fromarray(facade(2000, 1000, seed=3)).save(folder / "huge.png")
    (folder / "broken.jpg").symlink_to(folder / "does-not-exist.jpg")
    (folder / "loop1.jpg").symlink_to(folder / "loop2.jpg")
    (folder / "loop2.jpg").symlink_to(folder / "loop1.jpg")
    (folder / "readme.txt").write_text("ignored, not an image")
    return {
        "empty.jpg": "empty",
        "truncated.jpg": "truncated",
        "notes.png": "not a readable image",
        "anim.gif": "not supported",
        "huge.png": "megapixels",
        "broken.jpg": "broken symlink",
        "loop1.jpg": "loop",
        "loop2.jpg": "loop",
    }


def test_bad_input_is_recorded_and_the_batch_goes_on(workspace, tmp_path: Path, sample_dir: Path) -> None:
    first = workspace.ingest(sample_dir / "facade_006.jpg", progress=False)
    assert len(first.added) == 1
    workspace.settings = type(workspace.settings)(**{**workspace.settings.__dict__, "max_megapixels": 1.0})
    expected = _bad_inputs(tmp_path / "bad", sample_dir / "facade_000.jpg")
    report = workspace.ingest(tmp_path / "bad", progress=False)
    assert report.added == ["%s" % (tmp_path / "bad" / "good.jpg")]
    reasons = {Path(item).name: reason for item, reason in report.failed}
    assert set(reasons) == set(expected)
    for name, words in expected.items():
        assert words in reasons[name], (name, reasons[name])
    assert "megapixels" in reasons["huge.png"] and "ITAGGER_MAX_MEGAPIXELS" in reasons["huge.png"]
    assert [Path(p).name for p in report.ignored] == ["readme.txt"]
    assert report.status == "partial"
    with workspace.engine.connect() as connection:
        stored = connection.execute(sa.select(RunFailure.input, RunFailure.reason)).all()
    assert {Path(i).name for i, _ in stored} == set(expected)
    # Nothing already stored was lost.
    assert _count(workspace, Image) == 2
    assert workspace.check().ok
    text = str(report)
    assert "FAILED" in text and "truncated.jpg" in text
    assert "<table>" in report._repr_html_()


def test_folder_matched_by_file_pattern(workspace, tmp_path: Path, sample_dir: Path) -> None:
    top = tmp_path / "top"
    (top / "sub").mkdir(parents=True)
    shutil.copy(sample_dir / "facade_000.jpg", top / "one.jpg")
    shutil.copy(sample_dir / "facade_006.jpg", top / "sub" / "two.jpg")
    report = workspace.ingest(str(top / "*"), recursive=False, progress=False)
    assert len(report.added) == 1
    assert len(report.failed) == 1 and "is a folder" in report.failed[0][1]
    recursive = workspace.ingest(str(top / "*"), recursive=True, progress=False)
    assert len(recursive.added) == 1 and not recursive.failed


def test_folder_symlink_loop_is_a_failure_not_a_hang(workspace, tmp_path: Path, sample_dir: Path) -> None:
    top = tmp_path / "loopdir"
    top.mkdir()
    shutil.copy(sample_dir / "facade_000.jpg", top / "one.jpg")
    (top / "again").symlink_to(top)
    report = workspace.ingest(top, progress=False)
    assert len(report.added) == 1
    assert any("loop" in reason for _, reason in report.failed)


def _probe_as_nobody(target: Path, queue) -> None:  # type: ignore[no-untyped-def]
    from itagger_lib.errors import UnreadableFileError
    from itagger_lib.imaging import probe

    if os.geteuid() == 0:
        os.setgid(65534)
        os.setuid(65534)
    try:
        probe(target)
        queue.put("no error")
    except UnreadableFileError as exc:
        queue.put(str(exc))


def test_unreadable_file(workspace, tmp_path: Path, sample_dir: Path) -> None:
    import multiprocessing

    from itagger_lib.imaging import probe

    probe(sample_dir / "facade_000.jpg")  # load the decoders before dropping privileges
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="itagger-perm-"))
    folder.chmod(0o755)
    target = folder / "secret.jpg"
    shutil.copy(sample_dir / "facade_000.jpg", target)
    target.chmod(0)
    # root reads anything, so the check runs in a forked child that is not root.
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_probe_as_nobody, args=(target, queue))
    child.start()
    child.join(30)
    message = queue.get(timeout=5)
    shutil.rmtree(folder)
    assert str(target) in message and "permission denied" in message


def test_many_files_in_batches(workspace, tmp_path: Path) -> None:
    paths = write_samples(tmp_path / "many", n=30, width=160, height=120)
    report = workspace.ingest(tmp_path / "many", progress=False, workers=3)
    assert len(report.added) == len(paths) == _count(workspace, Image)
    assert workspace.check().ok


def test_image_lookup_by_id_hash_prefix_and_numpy_index(workspace, sample_dir: Path) -> None:
    from itagger_lib.errors import ImageNotFoundError

    workspace.ingest(sample_dir, progress=False)
    images = workspace.images()
    first = images.index[0]  # a numpy integer, as users get it from the DataFrame
    assert workspace.image(first)["sha256"] == images.loc[first, "sha256"]
    assert workspace.image(images.loc[first, "sha256"][:10])["id"] == first
    with pytest.raises(ImageNotFoundError, match="no image"):
        workspace.image(99999)
    with pytest.raises(ImageNotFoundError, match="8 hex digits"):
        workspace.image("abc")
