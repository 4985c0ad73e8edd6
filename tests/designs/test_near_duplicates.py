"""pHash against imagehash and a reference, near-duplicate pairs and groups against brute force."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import scipy.fftpack
from PIL import Image, ImageEnhance

from itagger_lib.designs import (
    DEFAULT_THRESHOLD,
    group_split,
    hamming,
    near_duplicate_groups,
    near_duplicate_pairs,
    phash,
    read_grey_reduced,
)
from itagger_lib.errors import ScienceError, UnreadableFileError, UnsupportedFormatError
from tests.designs.images import jpeg_bytes, scene


def reference_phash(image: Image.Image) -> int:
    """pHash as Krawetz (2011) describes it, step by step, with SciPy's legacy fftpack."""
    pixels = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.LANCZOS), dtype=float)
    low = scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=0), axis=1)[:8, :8]
    bits = "".join("1" if c > np.median(low) else "0" for c in low.ravel())
    return int(bits, 2)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for seed in range(12):
        path = folder / f"scene_{seed}.jpg"
        path.write_bytes(jpeg_bytes(scene(seed, 800, 600)))
        paths.append(path)
    return paths


def test_phash_matches_the_reference_definition(photos: list[Path]) -> None:
    for path in photos:
        with Image.open(path) as image:
            assert phash(np.asarray(image.convert("L"))) == reference_phash(image)


def test_phash_matches_imagehash(photos: list[Path]) -> None:
    imagehash = pytest.importorskip("imagehash", reason="imagehash is not installed (pip install imagehash)")
    reduced_distances = []
    for path in photos:
        with Image.open(path) as image:
            expected = str(imagehash.phash(image))
            assert f"{phash(np.asarray(image.convert('L'))):016x}" == expected
        # decoded at 1/4 size (200×150) instead of in full: the same hash or a bit or two off
        reduced_distances.append(int(hamming(phash(read_grey_reduced(path)), int(expected, 16))))
    assert max(reduced_distances) <= 2 and np.mean(reduced_distances) <= 0.5


def test_reduced_decode_is_small_and_hashes_like_the_full_image(photos: list[Path]) -> None:
    distances = []
    for path in photos:
        reduced = read_grey_reduced(path)
        assert reduced.shape == (150, 200) and reduced.dtype == np.uint8
        with Image.open(path) as image:
            distances.append(int(hamming(phash(reduced), phash(np.asarray(image.convert("L"))))))
    assert max(distances) <= 2 and np.mean(distances) <= 0.5


def test_edits_stay_within_the_threshold_and_other_scenes_do_not(photos: list[Path]) -> None:
    hashes = [phash(read_grey_reduced(path)) for path in photos]
    for path, original in zip(photos, hashes, strict=True):
        with Image.open(path) as image:
            image = image.convert("RGB")
            edits = [
                Image.open(io.BytesIO(jpeg_bytes(np.asarray(image), quality=50))),
                image.resize((400, 300), Image.Resampling.LANCZOS),
                ImageEnhance.Brightness(image).enhance(1.1),
                ImageEnhance.Contrast(image).enhance(0.85),
            ]
            for edit in edits:
                assert hamming(original, phash(np.asarray(edit.convert("L")))) <= DEFAULT_THRESHOLD
    distances = hamming(
        np.array(hashes, dtype=np.uint64)[:, None], np.array(hashes, dtype=np.uint64)[None, :]
    )
    assert distances[np.triu_indices(len(hashes), 1)].min() > 2 * DEFAULT_THRESHOLD


def test_phash_refuses_colour_or_float_arrays() -> None:
    with pytest.raises(ScienceError, match="greyscale"):
        phash(np.zeros((40, 40, 3), np.uint8))
    with pytest.raises(ScienceError, match="uint8"):
        phash(np.zeros((40, 40)))


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFileError, match=r"missing\.jpg"):
        read_grey_reduced(tmp_path / "missing.jpg")
    (tmp_path / "notes.jpg").write_text("not an image")
    with pytest.raises(UnsupportedFormatError, match=r"notes\.jpg"):
        read_grey_reduced(tmp_path / "notes.jpg")


def planted(n: int, rng: np.random.Generator, share: float = 0.3, max_flips: int = 9) -> np.ndarray:
    """Random 64-bit hashes, a share of them copies of others with a few bits flipped."""
    hashes = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64) * np.uint64(2) + rng.integers(
        0, 2, n
    ).astype(np.uint64)
    copies = rng.random(n) < share
    sources = rng.integers(0, n, n)
    for i in np.flatnonzero(copies):
        value = int(hashes[sources[i]])
        for bit in rng.choice(64, int(rng.integers(0, max_flips + 1)), replace=False):
            value ^= 1 << int(bit)
        hashes[i] = value
    return hashes


def brute_force_pairs(hashes: np.ndarray, threshold: int) -> np.ndarray:
    distance = hamming(hashes[:, None], hashes[None, :])
    i, j = np.nonzero(np.triu(distance <= threshold, 1))
    return np.stack([i, j, distance[i, j]], axis=1)


@pytest.mark.parametrize("threshold", [0, 1, 3, 4, 6, 7, 8, 11])
def test_pairs_and_groups_match_brute_force(threshold: int) -> None:
    rng = np.random.default_rng(threshold)
    hashes = planted(1500, rng)
    hashes[:20] = hashes[20:40]  # exact duplicates too
    expected = brute_force_pairs(hashes, threshold)
    assert np.array_equal(near_duplicate_pairs(hashes, threshold), expected)
    groups = near_duplicate_groups(hashes, threshold)
    # same group ⇔ connected by a chain of close pairs: check both directions
    assert np.all(groups[expected[:, 0]] == groups[expected[:, 1]])
    parent = np.arange(len(hashes))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = int(parent[x])
        return x

    for i, j, _ in expected.tolist():
        parent[find(i)] = find(j)
    roots = np.array([find(i) for i in range(len(hashes))])
    assert len(np.unique(roots)) == len(np.unique(groups))
    # labels in order of first appearance
    firsts = [int(np.flatnonzero(groups == g)[0]) for g in range(groups.max() + 1)]
    assert firsts == sorted(firsts)


def test_signed_and_unsigned_hashes_are_the_same_bits() -> None:
    hashes = np.array([2**63 + 5, 2**63 + 4, 12], dtype=np.uint64)
    signed = hashes.view(np.int64)
    assert near_duplicate_groups(signed, 1).tolist() == near_duplicate_groups(hashes, 1).tolist() == [0, 0, 1]
    assert near_duplicate_pairs([2**63 + 5, 2**63 + 4], 1).tolist() == [[0, 1, 1]]
    with pytest.raises(ScienceError, match="threshold"):
        near_duplicate_groups(hashes, 12)


def test_group_split_never_splits_a_group_and_hits_the_fractions() -> None:
    rng = np.random.default_rng(4)
    sizes = np.concatenate([rng.integers(2, 12, 60), np.ones(700, dtype=np.int64)])
    groups = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    n = len(groups)
    sides = group_split(groups, (0.8, 0.2), seed=1)
    for group in np.unique(groups):
        assert len(np.unique(sides[groups == group])) == 1
    assert abs(np.sum(sides == 1) - 0.2 * n) <= 1  # singletons come last and fill the gap
    three = group_split(groups, (0.7, 0.15, 0.15), seed=1)
    assert np.all(np.abs(np.bincount(three) - np.array([0.7, 0.15, 0.15]) * n) <= 1)
    assert not np.array_equal(sides, group_split(groups, (0.8, 0.2), seed=2))
    lumpy = np.repeat(np.arange(5), [40, 30, 20, 7, 3])
    sides = group_split(lumpy, (0.5, 0.5))
    assert abs(np.sum(sides == 1) - 50) <= 40
    with pytest.raises(ScienceError, match="fractions"):
        group_split(groups, (0.8, 0.3))
