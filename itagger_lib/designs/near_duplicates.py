"""Perceptual hashes of images and groups of near-duplicates by Hamming distance."""

from __future__ import annotations

import itertools

import numpy as np
import scipy.fft
import scipy.sparse as sp
from PIL import Image
from scipy.sparse.csgraph import connected_components

from itagger_lib.errors import ScienceError

__all__ = [
    "DEFAULT_THRESHOLD",
    "MAX_THRESHOLD",
    "hamming",
    "near_duplicate_groups",
    "near_duplicate_pairs",
    "phash",
]

HASH_SIDE = 32
LOW = 8
DEFAULT_THRESHOLD = 6
"""Bits (of 64) up to which two pHashes count as near-duplicates: re-encoding, resizing,
small colour and contrast changes stay within it; unrelated photographs sit near 32 with a
spread of about 4 bits (``docs/designs.md``)."""
MAX_THRESHOLD = 11
_BLOCKS = 4
_BLOCK_BITS = 16


def phash(grey: np.ndarray) -> int:
    """The 64-bit DCT perceptual hash of a greyscale image.

    The image is resampled to 32×32 (Lanczos, as Pillow does for ``imagehash.phash``), its
    2-D DCT-II is taken (unnormalised, rows then columns), and the 8×8 block of the lowest
    frequencies, the DC term included, is compared with its own median: bit = coefficient >
    median. Bits are read row by row, the first as the most significant, so
    ``f"{phash(x):016x}"`` is ``str(imagehash.phash(image))``. Similar images have hashes a
    few bits apart (:func:`hamming`); unrelated ones about 32.

    Parameters
    ----------
    grey : (h, w) uint8 array
        Luminance, for example decoded at a reduced size (``read_grey_reduced``).

    Returns
    -------
    int
        In ``[0, 2**64)``. Stored in a signed 64-bit column as
        ``np.uint64(h).astype(np.int64)``.

    References
    ----------
    Zauner, C. (2010). Implementation and benchmarking of perceptual image hash functions.
    Master's thesis, Upper Austria University of Applied Sciences, Hagenberg. Krawetz, N.
    (2011). Looks like it. The Hacker Factor Blog (the variant ``imagehash`` implements).
    """
    grey = np.asarray(grey)
    if grey.ndim != 2 or grey.dtype != np.uint8:
        raise ScienceError(f"phash needs a 2-D uint8 greyscale image, not {grey.dtype} {grey.shape}")
    if grey.shape != (HASH_SIDE, HASH_SIDE):
        grey = np.asarray(Image.fromarray(grey).resize((HASH_SIDE, HASH_SIDE), Image.Resampling.LANCZOS))
    pixels = grey.astype(np.float64)
    coefficients = scipy.fft.dct(scipy.fft.dct(pixels, axis=0), axis=1)[:LOW, :LOW]
    bits = coefficients > np.median(coefficients)
    return int.from_bytes(np.packbits(bits.ravel()).tobytes(), "big")


def hamming(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Number of differing bits between 64-bit hashes (element-wise), 0 to 64."""
    return np.bitwise_count(_as_uint64(np.asarray(a)) ^ _as_uint64(np.asarray(b))).astype(np.int64)


def _as_uint64(hashes: np.ndarray) -> np.ndarray:
    """The hashes as ``uint64`` (``int64`` read as the same bits; Python ints modulo 2⁶⁴)."""
    if hashes.dtype == np.uint64:
        return hashes
    if hashes.dtype == np.int64:
        return hashes.view(np.uint64)
    if np.issubdtype(hashes.dtype, np.integer) or hashes.dtype == object:
        flat = [int(h) & (2**64 - 1) for h in hashes.ravel()]
        return np.array(flat, dtype=np.uint64).reshape(hashes.shape)
    raise ScienceError(f"hashes must be 64-bit integers, not {hashes.dtype}")


def near_duplicate_pairs(hashes: np.ndarray, threshold: int = DEFAULT_THRESHOLD) -> np.ndarray:
    """All pairs of hashes at Hamming distance ≤ ``threshold``, found without comparing all.

    Multi-index hashing: the 64 bits are dealt into four 16-bit blocks. Two hashes within
    ``t`` bits differ in at most ``⌊t/4⌋`` bits in at least one block (pigeonhole), so every
    such pair is found by looking up, for each hash and block, the hashes whose block lies
    within ``⌊t/4⌋`` bits of its own: exact matches for ``t ≤ 3``, the 17 values at
    distance ≤ 1 for ``t ≤ 7``, the 137 at distance ≤ 2 for ``t ≤ 11``. Candidates are then
    checked on all 64 bits. Equal hashes are joined first, so exact duplicates cost nothing.
    Keys are counted into 2¹⁶ buckets, so a lookup is an index, and each unordered pair is
    looked up from one side only. With balanced bits a lookup finds about ``n·V/2¹⁷``
    candidates (``V`` values looked up per key), so 100,000 hashes need about 5 million
    checks at ``t ≤ 7`` and 40 million at ``t ≤ 11``; clustered collections (many similar
    photographs) fill some buckets more and cost more.
    Every pair among ``c`` equal hashes is listed, ``c(c-1)/2`` rows: for groups alone use
    :func:`near_duplicate_groups`, which does not list them.

    Parameters
    ----------
    hashes : (n,) uint64 or int64 array
        64-bit hashes (int64 is read as the same bits).
    threshold : int
        0 to ``MAX_THRESHOLD`` (11) bits.

    Returns
    -------
    (m, 3) int64 array
        ``(i, j, distance)`` with ``i < j`` indices into ``hashes``, sorted.

    References
    ----------
    Norouzi, M., Punjani, A. & Fleet, D. J. (2012). Fast search in Hamming space with
    multi-index hashing. CVPR 2012, 3108–3115. Greene, D., Parnas, M. & Yao, F. (1994).
    Multi-index hashing for information retrieval. FOCS 1994, 722–731.
    """
    values = _as_uint64(np.asarray(hashes)).ravel()
    if not 0 <= threshold <= MAX_THRESHOLD:
        raise ScienceError(
            f"threshold must be between 0 and {MAX_THRESHOLD} bits; above that pHashes of "
            "different photographs start to meet"
        )
    unique, inverse = np.unique(values, return_inverse=True)
    found = [_same_hash_pairs(inverse)]
    if len(unique) > 1 and threshold > 0:
        i, j, distance = _close_pairs(unique, threshold)
        found.append(_expand(i, j, distance, inverse))
    result = np.concatenate(found)
    return result[np.lexsort((result[:, 1], result[:, 0]))]


def _same_hash_pairs(inverse: np.ndarray) -> np.ndarray:
    """Pairs of positions with equal hashes (distance 0)."""
    order = np.argsort(inverse, kind="stable")
    sorted_ids = inverse[order]
    pairs = []
    gap = 1
    while True:
        same = sorted_ids[gap:] == sorted_ids[:-gap] if gap < len(order) else np.zeros(0, bool)
        if not same.any():
            break
        first, second = order[:-gap][same], order[gap:][same]
        pairs.append(np.stack([np.minimum(first, second), np.maximum(first, second)], axis=1))
        gap += 1
    if not pairs:
        return np.zeros((0, 3), dtype=np.int64)
    joined = np.concatenate(pairs)
    return np.column_stack([joined, np.zeros(len(joined), dtype=np.int64)]).astype(np.int64)


def _block_keys(unique: np.ndarray, block: int) -> np.ndarray:
    """Bits ``block, block + 4, block + 8, …`` of each hash as a 16-bit key.

    Interleaved rather than contiguous blocks: a pHash's first bits (the DC term and the
    lowest frequencies) are far from uniform, and spreading them over all four blocks keeps
    the buckets of every block evenly filled.
    """
    keys = np.zeros(len(unique), dtype=np.uint64)
    for bit in range(_BLOCK_BITS):
        keys |= ((unique >> np.uint64(_BLOCKS * bit + block)) & np.uint64(1)) << np.uint64(bit)
    return keys.astype(np.int64)


def _close_pairs(unique: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index pairs ``i < j`` of distinct hashes within ``threshold`` bits, and their distance."""
    radius = threshold // _BLOCKS
    flips = [0]
    for r in range(1, radius + 1):
        flips += [sum(1 << b for b in bits) for bits in itertools.combinations(range(_BLOCK_BITS), r)]
    firsts, seconds = [], []
    everyone = np.arange(len(unique))
    for block in range(_BLOCKS):
        keys = _block_keys(unique, block)
        # Buckets of equal keys: members sorted by key, and where each key's run starts.
        members = np.argsort(keys, kind="stable")
        sizes = np.bincount(keys, minlength=1 << _BLOCK_BITS)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        for flip in flips:
            wanted = keys ^ flip
            # Each unordered pair once: from its smaller key (or, in one bucket, its lower index).
            query = everyone if flip == 0 else everyone[keys < wanted]
            counts = sizes[wanted[query]]
            total = int(counts.sum())
            if total == 0:
                continue
            first = np.repeat(query, counts)
            offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
            second = members[np.repeat(starts[wanted[query]], counts) + offsets]
            if flip == 0:
                keep = first < second
                first, second = first[keep], second[keep]
            # Check each lookup's candidates at once, so memory stays at one lookup's worth.
            close = np.bitwise_count(unique[first] ^ unique[second]) <= threshold
            firsts.append(np.minimum(first[close], second[close]))
            seconds.append(np.maximum(first[close], second[close]))
    if not firsts:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    # A pair close in several blocks is found several times.
    keys = np.unique(np.concatenate(firsts) * len(unique) + np.concatenate(seconds))
    i, j = keys // len(unique), keys % len(unique)
    return i, j, np.bitwise_count(unique[i] ^ unique[j]).astype(np.int64)


def _expand(i: np.ndarray, j: np.ndarray, distance: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """Pairs of distinct hashes to pairs of positions (a hash may stand for several)."""
    order = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    repeat = counts[i] * counts[j]
    if repeat.sum() == len(i):
        a, b = order[starts[i]], order[starts[j]]
    else:
        pair = np.repeat(np.arange(len(i)), repeat)
        within = np.arange(repeat.sum()) - np.repeat(np.cumsum(repeat) - repeat, repeat)
        a = order[starts[i][pair] + within // counts[j][pair]]
        b = order[starts[j][pair] + within % counts[j][pair]]
        distance = distance[pair]
    return np.column_stack([np.minimum(a, b), np.maximum(a, b), distance]).astype(np.int64)


def near_duplicate_groups(hashes: np.ndarray, threshold: int = DEFAULT_THRESHOLD) -> np.ndarray:
    """Group label of each hash: connected components of the graph of near-duplicate pairs.

    Two images are in one group when a chain of images, each within ``threshold`` bits of
    the next, joins them (single linkage: a long chain of small edits can join images that
    are far apart themselves). Labels are ``0 … g-1`` in order of each group's first
    member, so images without near-duplicates get a group of their own.

    Returns
    -------
    (n,) int64 array
        Group label of each hash.
    """
    values = _as_uint64(np.asarray(hashes)).ravel()
    if not 0 <= threshold <= MAX_THRESHOLD:
        raise ScienceError(f"threshold must be between 0 and {MAX_THRESHOLD} bits, not {threshold}")
    # Equal hashes share a node, so a thousand copies of one image cost one node.
    unique, inverse = np.unique(values, return_inverse=True)
    if len(unique) > 1 and threshold > 0:
        i, j, _ = _close_pairs(unique, threshold)
    else:
        i = j = np.zeros(0, np.int64)
    n = len(unique)
    graph = sp.csr_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    labels = connected_components(graph, directed=False)[1][inverse]
    # Renumber by first appearance.
    _, first = np.unique(labels, return_index=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[labels]
