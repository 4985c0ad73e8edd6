"""Study designs: Bradley–Terry fit, pHash and near-duplicate grouping, against their bounds.

    python benchmarks/studies.py [--images 1000] [--repeats 3]

Prints one table; each row gives the measured figure beside its bound, measured in the
same run where the bound is a rate:

* Bradley–Terry fit (scores and standard errors) of 100,000 judgements over 10,000 images
  from balanced schedules of 20 raters; bound 2 s;
* pHash of N photo-like 1600×1200 JPEGs (decoded at 1/8 size, straight to luminance)
  against decode-only ``cv2.imread`` of the same files in the same run; bound ≥ 0.5×;
* grouping 100,000 pHash-like hashes (10 % planted near-duplicates) into near-duplicate
  groups at the default threshold; bound 5 s.

Timed figures are the median of ``--repeats`` runs (the slowest is printed too), after
one untimed warm-up; the JPEGs are read once before timing so both rates see the page
cache. Info rows (no bound) show what the study needs around them: making the schedules,
the best–worst logit fit, the cheapest and dearest thresholds (timed once). Run it on an
idle machine; the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np
from PIL import Image
from scipy.special import expit
from scipy.stats import spearmanr

from itagger_lib.designs import (
    DEFAULT_THRESHOLD,
    best_worst_mnl,
    bradley_terry,
    near_duplicate_groups,
    pair_schedule,
    phash,
    read_grey_reduced,
)

POOL = 24


def timed(function: Callable[[], object], repeats: int) -> tuple[float, float, object]:
    """Median and slowest seconds of ``repeats`` calls after one warm-up, and the last result."""
    result = function()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), max(seconds), result


def photo(seed: int, width: int = 1600, height: int = 1200) -> np.ndarray:
    """A photo-like RGB scene: smooth colour field, facade-like rectangles, fine texture."""
    rng = np.random.default_rng(seed)
    field = cv2.resize(rng.normal(0, 1, (6, 8, 3)), (width, height), interpolation=cv2.INTER_CUBIC)
    image = (field - field.min()) / (np.ptp(field) + 1e-9) * 180 + 30
    for _ in range(int(rng.integers(20, 60))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(20, 400)), y0 + int(rng.integers(20, 300))
        image[y0:y1, x0:x1] = rng.uniform(0, 255, 3)
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_jpegs(folder: Path, n: int) -> list[Path]:
    """N distinct JPEG files from a pool of scenes (each made unique by a JPEG comment)."""
    pool = []
    for seed in range(POOL):
        buffer = io.BytesIO()
        Image.fromarray(photo(seed)).save(buffer, "JPEG", quality=90)
        pool.append(buffer.getvalue())
    paths = []
    for index in range(n):
        data = pool[index % POOL]
        comment = f"itagger studies benchmark {index}".encode()
        segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
        path = folder / f"img_{index:06d}.jpg"
        path.write_bytes(data[:2] + segment + data[2:])
        paths.append(path)
    return paths


def phash_like(n: int, rng: np.random.Generator, duplicate_share: float = 0.1) -> np.ndarray:
    """Hashes built as pHash builds them, from 1/f-weighted low-frequency coefficients.

    The DC coefficient dominates (its bit is always 1) and every hash has 32 bits set, as
    real pHashes do; a share of them are copies of others with 0–4 bits flipped.
    """
    originals = int(n * (1 - duplicate_share))
    u, v = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    coefficients = rng.normal(0, 1, (originals, 64)) / (1.0 + np.hypot(u, v).ravel())
    coefficients[:, 0] = 50.0
    bits = coefficients > np.median(coefficients, axis=1, keepdims=True)
    hashes = np.packbits(bits, axis=1).view(">u8").ravel().astype(np.uint64)
    copies = hashes[rng.integers(0, originals, n - originals)].copy()
    for row in range(len(copies)):
        for bit in rng.choice(64, int(rng.integers(0, 5)), replace=False):
            copies[row] ^= np.uint64(1) << np.uint64(int(bit))
    return np.concatenate([hashes, copies])


def bradley_terry_rows(repeats: int) -> list[tuple[str, str, str, str]]:
    rng = np.random.default_rng(1)
    n_images, n_raters, per_rater = 10_000, 20, 5_000
    start = time.perf_counter()
    pairs = pair_schedule(n_images, per_rater, n_raters, seed=1).reshape(-1, 2)
    schedule_seconds = time.perf_counter() - start
    theta = rng.normal(0, 1, n_images)
    outcomes = (rng.random(len(pairs)) < expit(theta[pairs[:, 0]] - theta[pairs[:, 1]])).astype(float)
    median, slowest, fit = timed(lambda: bradley_terry(pairs, outcomes), repeats)
    rho = spearmanr(fit.scores, theta)[0]  # type: ignore[attr-defined]
    passed = median <= 2.0
    trials = rng.integers(0, n_images, (25_000, 4))
    while True:  # redraw the trials that show an image twice
        ordered = np.sort(trials, axis=1)
        again = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
        if not again.any():
            break
        trials[again] = rng.integers(0, n_images, (int(again.sum()), 4))
    utility = theta[trials] + rng.gumbel(size=trials.shape)
    rows = np.arange(len(trials))
    best_at = utility.argmax(axis=1)
    against = -theta[trials] + rng.gumbel(size=trials.shape)
    against[rows, best_at] = -np.inf
    best, worst = trials[rows, best_at], trials[rows, against.argmax(axis=1)]
    mnl_median, _, _ = timed(lambda: best_worst_mnl(trials, best, worst, n_items=n_images), repeats)
    return [
        (
            "Bradley–Terry fit + SEs, 100k judgements / 10k images",
            f"{median:.2f} s",
            f"≤ 2 s (slowest {slowest:.2f} s)",
            "PASS" if passed else "FAIL",
        ),
        ("  Spearman of the fit with the true strengths", f"{rho:.3f}", "10 judgements per image", "info"),
        ("  schedules of 20 raters × 5,000 pairs (10k images)", f"{schedule_seconds:.2f} s", "", "info"),
        ("best–worst logit fit + SEs, 25k trials of 4 / 10k images", f"{mnl_median:.2f} s", "", "info"),
    ]


def phash_rows(n_images: int, repeats: int) -> list[tuple[str, str, str, str]]:
    cv2.setNumThreads(1)
    folder = Path(tempfile.mkdtemp(prefix="itagger-bench-studies-"))
    try:
        files = write_jpegs(folder, n_images)
        for path in files:
            path.read_bytes()  # page cache

        def decode_only() -> None:
            for path in files:
                cv2.imread(str(path), cv2.IMREAD_COLOR)

        def reduced_only() -> None:
            for path in files:
                read_grey_reduced(path)

        def hash_all() -> list[int]:
            return [phash(read_grey_reduced(path)) for path in files]

        decode_seconds, _, _ = timed(decode_only, repeats)
        reduced_seconds, _, _ = timed(reduced_only, repeats)
        hash_seconds, hash_slowest, _ = timed(hash_all, repeats)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    decode_rate = n_images / decode_seconds
    hash_rate = n_images / hash_seconds
    ratio = hash_rate / decode_rate
    return [
        ("bound: cv2.imread decode only, 1 process", f"{decode_rate:.0f} img/s", "", ""),
        (
            f"pHash of {n_images} JPEGs 1600×1200 (1/8 decode)",
            f"{hash_rate:.0f} img/s",
            f"{ratio:.2f}× decode (≥ 0.5; slowest {n_images / hash_slowest:.0f})",
            "PASS" if ratio >= 0.5 else "FAIL",
        ),
        ("  reduced decode alone (Pillow draft, L)", f"{n_images / reduced_seconds:.0f} img/s", "", "info"),
    ]


def grouping_rows(repeats: int) -> list[tuple[str, str, str, str]]:
    hashes = phash_like(100_000, np.random.default_rng(2))
    median, slowest, groups = timed(lambda: near_duplicate_groups(hashes, DEFAULT_THRESHOLD), repeats)
    rows = [
        (
            f"near-duplicate groups of 100k hashes, t = {DEFAULT_THRESHOLD}",
            f"{median:.2f} s",
            f"≤ 5 s (slowest {slowest:.2f} s; {len(np.unique(groups))} groups)",  # type: ignore[arg-type]
            "PASS" if median <= 5.0 else "FAIL",
        )
    ]
    for threshold in (3, 11):  # once each: the cheapest and the dearest threshold
        start = time.perf_counter()
        groups = near_duplicate_groups(hashes, threshold)
        seconds = time.perf_counter() - start
        rows.append(
            (f"  same at t = {threshold}", f"{seconds:.2f} s", f"{len(np.unique(groups))} groups", "info")
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load_before = os.getloadavg()
    rows = bradley_terry_rows(args.repeats)
    rows += phash_rows(args.images, args.repeats)
    rows += grouping_rows(args.repeats)
    load_after = os.getloadavg()
    print(f"\nStudies benchmark: {os.cpu_count()} cores, median of {args.repeats} runs after a warm-up")
    print(
        "load average (1/5/15 min) before: "
        + "/".join(f"{x:.2f}" for x in load_before)
        + "; after: "
        + "/".join(f"{x:.2f}" for x in load_after)
        + "\n"
    )
    print(f"| {'measure':58} | {'value':>11} | {'against the bound':44} | result |")
    print(f"|{'-' * 60}|{'-' * 13}|{'-' * 46}|--------|")
    for measure, value, against, result in rows:
        print(f"| {measure:58} | {value:>11} | {against:44} | {result:6} |")
    return 0 if all(result != "FAIL" for *_, result in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
