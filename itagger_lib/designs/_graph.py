"""Weighted comparison graphs: Newton steps and score variances for choice models on items.

Bradley–Terry and the multinomial-logit best–worst model share one structure: the Fisher
information of a comparison (or a choice from a set) is a weighted graph Laplacian over the
items it involves, ``I = Σ w_ij (e_i - e_j)(e_i - e_j)ᵀ``, and a Gaussian prior
``θ ~ N(0, σ² I)`` adds ``λ = 1/σ²`` to the diagonal. This module holds what both fits need:
the sparse matrix ``H = L_w + λI`` with a fixed pattern, a preconditioned conjugate-gradient
solve, and the diagonal of the covariance of the centred scores.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from itagger_lib.errors import ScienceError

__all__ = ["EXACT_LIMIT", "ComparisonGraph", "maximise"]

EXACT_LIMIT = 2000
# Connected parts up to this size are always inverted exactly: belief propagation is exact
# on a tree, the slow mode of its mean included, so adding that mode to a small tree-like
# part would count it twice; from this size on the mode's variance, 1/(n_c λ), is small
# next to an item's own.
SMALL_PART = 200


class ComparisonGraph:
    """The pattern of item pairs that appear together in at least one comparison.

    ``first`` and ``second`` list one pair per edge instance (a comparison, or a pair of
    items shown in one trial); instances of the same unordered pair share one matrix entry,
    so weights per instance are summed with one ``np.bincount`` per Newton step.
    """

    def __init__(self, n_items: int, first: np.ndarray, second: np.ndarray) -> None:
        self.n_items = n_items
        low = np.minimum(first, second).astype(np.int64)
        high = np.maximum(first, second).astype(np.int64)
        keys, self.instance_edge = np.unique(low * n_items + high, return_inverse=True)
        self.low = keys // n_items
        self.high = keys % n_items
        n_edges = len(keys)
        rows = np.concatenate([self.low, self.high, np.arange(n_items)])
        cols = np.concatenate([self.high, self.low, np.arange(n_items)])
        # Each entry of the fixed CSR pattern remembers which slot of `values` it holds.
        order = sp.csr_matrix(
            (np.arange(1, 2 * n_edges + n_items + 1, dtype=np.float64), (rows, cols)),
            shape=(n_items, n_items),
        )
        self._slot = order.data.astype(np.int64) - 1
        self._pattern = order
        self.n_edges = n_edges

    def edge_weights(self, instance_weights: np.ndarray) -> np.ndarray:
        """Sum per-instance weights into one weight per unordered pair."""
        return np.bincount(self.instance_edge, instance_weights, minlength=self.n_edges)

    def matrix(self, weights: np.ndarray, ridge: float) -> sp.csr_matrix:
        """``H = L_w + ridge·I`` for edge weights ``w`` (one per unordered pair)."""
        degree = np.bincount(self.low, weights, self.n_items) + np.bincount(self.high, weights, self.n_items)
        values = np.concatenate([-weights, -weights, degree + ridge])
        matrix = self._pattern.copy()
        matrix.data = values[self._slot]
        return matrix

    def components(self) -> np.ndarray:
        """Connected-component label of every item (items never compared are their own)."""
        adjacency = sp.csr_matrix(
            (np.ones(self.n_edges), (self.low, self.high)), shape=(self.n_items, self.n_items)
        )
        return connected_components(adjacency, directed=False)[1]

    def centred_variances(
        self, weights: np.ndarray, ridge: float, exact_limit: int = EXACT_LIMIT
    ) -> tuple[np.ndarray, str]:
        """Diagonal of ``C H⁻¹ C`` with ``C = I - 11ᵀ/n``: the variances of centred scores.

        Exact (dense Cholesky) when ``n ≤ exact_limit``; otherwise each connected component
        of at most ``max(exact_limit, SMALL_PART)`` items is inverted exactly and larger ones
        by Gaussian belief propagation plus the variance ``1/(n_c λ)`` of the component's
        mean, which is exact on trees and within a fraction of a percent on sparse
        random designs (Weiss & Freeman 2001; Malioutov, Johnson & Willsky 2006, whose
        walk-summability condition holds because ``H`` is diagonally dominant). Returns the
        variances and ``"exact"`` or ``"belief-propagation"``.
        """
        n = self.n_items
        matrix = self.matrix(weights, ridge)
        if n <= exact_limit:
            # L1 = 0, so adding 11ᵀ/n moves only the eigenvalue along 1 (to ridge + 1); the
            # centred covariance is the inverse minus that direction's share.
            dense = matrix.toarray() + 1.0 / n
            return _inverse_diagonal(dense) - 1.0 / (n * (1.0 + ridge)), "exact"
        if ridge <= 0:
            variances = _belief_propagation(self.low, self.high, weights, matrix.diagonal(), n)
            return variances, "belief-propagation"
        labels = self.components()
        sizes = np.bincount(labels)
        variances = _belief_propagation(self.low, self.high, weights, matrix.diagonal(), n)
        # Belief propagation sees the neighbourhood of an item, not the slow mode of a whole
        # component: its mean is pinned by the prior alone, with variance 1/(n_c λ).
        variances = variances + 1.0 / (sizes[labels] * ridge)
        small = np.flatnonzero((sizes > 1) & (sizes <= max(exact_limit, SMALL_PART)))
        if len(small):
            members = np.argsort(labels, kind="stable")
            starts = np.concatenate([[0], np.cumsum(sizes)])
            for label in small:
                items = members[starts[label] : starts[label + 1]]
                block = matrix[items][:, items].toarray()
                variances[items] = _inverse_diagonal(block)
        singles = sizes[labels] == 1
        variances[singles] = 1.0 / matrix.diagonal()[singles]
        # Centring over all n items: H1 = λ1, so diag(C H⁻¹ C) = diag(H⁻¹) - 1/(nλ).
        return variances - 1.0 / (n * ridge), "belief-propagation"


def _inverse_diagonal(matrix: np.ndarray) -> np.ndarray:
    if len(matrix) <= 500:
        # Small: numpy's inverse; SciPy's threaded LAPACK spends ~100× longer starting up.
        return np.diag(np.linalg.inv(matrix)).copy()
    factor = scipy.linalg.cho_factor(matrix, lower=False, check_finite=False)[0]
    inverse, info = scipy.linalg.lapack.dpotri(factor, lower=0)
    if info != 0:
        raise ScienceError("the information matrix of the scores is singular")
    return np.diag(inverse).copy()


def _belief_propagation(
    low: np.ndarray, high: np.ndarray, weights: np.ndarray, diagonal: np.ndarray, n: int
) -> np.ndarray:
    """Marginal variances of the Gaussian with precision ``H`` by Gaussian belief propagation."""
    source = np.concatenate([low, high])
    target = np.concatenate([high, low])
    squared = np.concatenate([weights, weights]) ** 2
    m = len(low)
    reverse = np.concatenate([np.arange(m, 2 * m), np.arange(m)])
    diagonal = diagonal + 1e-12 * max(float(diagonal.max(initial=0.0)), 1.0)
    messages = np.zeros(2 * m)
    for _ in range(200):
        precision = diagonal + np.bincount(target, messages, n)
        updated = -squared / (precision[source] - messages[reverse])
        converged = np.max(np.abs(updated - messages), initial=0.0) <= 1e-10 * diagonal.max()
        messages = updated
        if converged:
            break
    return 1.0 / (diagonal + np.bincount(target, messages, n))


def conjugate_gradient(
    matrix: sp.csr_matrix, rhs: np.ndarray, rtol: float = 1e-10, max_iter: int = 1000
) -> np.ndarray:
    """Solve ``matrix @ x = rhs`` for symmetric positive (semi)definite ``matrix`` (Jacobi PCG)."""
    inverse_diagonal = 1.0 / matrix.diagonal()
    x = np.zeros_like(rhs)
    residual = rhs.copy()
    z = inverse_diagonal * residual
    direction = z.copy()
    rz = residual @ z
    stop = rtol * np.linalg.norm(rhs)
    for _ in range(max_iter):
        if np.linalg.norm(residual) <= stop:
            break
        product = matrix @ direction
        step = rz / (direction @ product)
        x += step * direction
        residual -= step * product
        z = inverse_diagonal * residual
        rz_next = residual @ z
        direction = z + (rz_next / rz) * direction
        rz = rz_next
    return x


Model = Callable[[np.ndarray], tuple[float, np.ndarray, np.ndarray]]
"""``θ ↦ (log-likelihood, gradient, Laplacian weight of each distinct pair)``."""


def maximise(
    model: Model,
    graph: ComparisonGraph,
    ridge: float,
    *,
    tolerance: float = 1e-9,
    max_iter: int = 100,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Newton's method on a concave log-posterior whose negative Hessian is ``L_w + ridge·I``.

    ``model(θ)`` returns the log-likelihood, its gradient and the Laplacian weight of each
    distinct pair of ``graph`` at ``θ``; the Gaussian prior ``-ridge·|θ|²/2`` is added here. Steps are halved
    while the objective would fall. Stops when no score moves by more than ``tolerance``.
    Returns the scores (centred when ``ridge == 0``), the final edge weights and the number
    of Newton steps.
    """
    theta = np.zeros(graph.n_items)
    loglik, gradient, weights = model(theta)
    objective = loglik
    for iteration in range(1, max_iter + 1):
        matrix = graph.matrix(weights, ridge)
        step = conjugate_gradient(matrix, gradient - ridge * theta)
        if ridge == 0:
            step -= step.mean()
        scale = 1.0
        while True:
            candidate = theta + scale * step
            loglik, new_gradient, new_weights = model(candidate)
            new_objective = loglik - 0.5 * ridge * float(candidate @ candidate)
            if new_objective >= objective - 1e-12 * abs(objective) or scale < 1e-6:
                break
            scale *= 0.5
        theta, gradient, weights, objective = candidate, new_gradient, new_weights, new_objective
        if np.max(np.abs(scale * step), initial=0.0) <= tolerance:
            return theta, weights, iteration
    raise ScienceError(
        f"the score fit did not converge in {max_iter} Newton steps; the data may separate "
        "some items completely: give a finite prior_sd"
    )
