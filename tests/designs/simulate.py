"""Judgements simulated from known scores, for the design tests."""

from __future__ import annotations

import numpy as np
from scipy.special import expit


def pairwise_outcomes(theta: np.ndarray, pairs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """1.0 where the first item wins, drawn from the Bradley–Terry model with scores ``theta``."""
    p = expit(theta[pairs[:, 0]] - theta[pairs[:, 1]])
    return (rng.random(len(pairs)) < p).astype(np.float64)


def random_pairs(n_items: int, n_pairs: int, rng: np.random.Generator) -> np.ndarray:
    first = rng.integers(0, n_items, n_pairs)
    second = (first + rng.integers(1, n_items, n_pairs)) % n_items
    return np.stack([first, second], axis=1)


def best_worst_choices(
    theta: np.ndarray, blocks: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Best then worst of each block from the sequential logit model (Gumbel maxima)."""
    rows = np.arange(len(blocks))
    best_at = (theta[blocks] + rng.gumbel(size=blocks.shape)).argmax(axis=1)
    against = -theta[blocks] + rng.gumbel(size=blocks.shape)
    against[rows, best_at] = -np.inf
    return blocks[rows, best_at], blocks[rows, against.argmax(axis=1)]
