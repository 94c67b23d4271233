"""HistGradientBoosting's trees walked by a numba-compiled kernel, for batch-sized row counts.

Importing this module imports numba, and `warm` compiles the kernel (or loads it from numba's
cache), so `serving.fastpath.trees` imports it only for a batch of its `COMPILED_MIN_ROWS` rows
or more, and only if numba is installed: the endpoint's requests never pay for it.

Why it is faster than scikit-learn's per-tree predictor, which walks one row at a time and
branches at every node (about half of those branches mispredict): here each tree is walked by
eight rows at once, without branches. A node's three children (left, right, where a missing
value goes) sit in one table, so one step is ``child[3 * node + (x > threshold) + 2 * isnan(x)]``
(a missing value is never greater than the threshold). A leaf is its own child, so every row
takes as many steps as the tree is deep and the eight walks are independent chains of loads
that the processor overlaps. The leaf values are added to the baseline tree by tree, in
scikit-learn's order, so the sums are bit-identical to ``_raw_predict``.

Node numbers and features are unsigned (``uint32``) and a step computes its index in unsigned
arithmetic: numba checks every signed index for a negative value (Python's index from the end),
which cost more instructions than the step itself. Unsigned, the walk of the churn model takes
less than half the time it took with ``int32`` tables (docs/batch-scoring.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numba
import numpy as np

if TYPE_CHECKING:
    from serving.fastpath.trees import Forest

# Rows per block: each tree is walked for a block's rows before the next tree, so the tree's
# nodes stay in the processor's cache while the block's rows stream by.
_BLOCK_ROWS = 1024
_LANES = 8  # rows walked at once: the unrolled calls to `_step` in `_walk`
_TWO, _THREE = np.uint32(2), np.uint32(3)  # keep a step's index arithmetic unsigned


@dataclass(frozen=True)
class Tables:
    """The trees of a fitted HistGradientBoosting estimator as the kernel's flat arrays:
    each node's three children, feature, threshold and value; each tree's root, depth and
    output column."""

    children: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    depth: np.ndarray
    column: np.ndarray

    def add_leaves(self, X: np.ndarray, raw: np.ndarray) -> None:
        """Add every tree's leaf value to `raw` (rows, trees per iteration; Fortran order, so
        that each column is contiguous), tree by tree."""
        if not raw.flags.f_contiguous:
            raise ValueError("raw must be in Fortran order")
        _walk(X, self.roots, self.depth, self.column, self.feature, self.threshold,
              self.children, self.value, raw.T)


def tables_for(forest: Forest) -> Tables:
    """The kernel's tables from a `Forest`'s (which address node n at 2n)."""
    left, right = forest.children[0::2] // 2, forest.children[1::2] // 2
    missing = np.where(forest.nan_right[0::2], right, left)

    def uint32(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=np.uint32)

    def float64(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=np.float64)

    return Tables(
        children=uint32(np.stack([left, right, missing], axis=1).ravel()),
        feature=uint32(forest.feature[0::2]), threshold=float64(forest.threshold[0::2]),
        value=float64(forest.value[0::2]), roots=uint32(forest.roots // 2),
        depth=uint32(forest.tree_depth),
        column=uint32(np.arange(len(forest.roots)) % forest.per_iteration))


@numba.njit(inline="always")
def _step(X, row, node, feature, threshold, children):
    x = X[row, feature[node]]
    return children[_THREE * node + np.uint32(x > threshold[node])
                    + _TWO * np.uint32(np.isnan(x))]


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _walk(X, roots, depth, column, feature, threshold, children, value, raw_by_column):
    n = X.shape[0]
    for start in range(0, n, _BLOCK_ROWS):
        end = min(n, start + _BLOCK_ROWS)
        for tree in range(roots.shape[0]):
            root, levels = roots[tree], depth[tree]
            out = raw_by_column[column[tree]]
            i = start
            while i + _LANES <= end:
                n0 = n1 = n2 = n3 = n4 = n5 = n6 = n7 = root
                for _ in range(levels):
                    n0 = _step(X, i, n0, feature, threshold, children)
                    n1 = _step(X, i + 1, n1, feature, threshold, children)
                    n2 = _step(X, i + 2, n2, feature, threshold, children)
                    n3 = _step(X, i + 3, n3, feature, threshold, children)
                    n4 = _step(X, i + 4, n4, feature, threshold, children)
                    n5 = _step(X, i + 5, n5, feature, threshold, children)
                    n6 = _step(X, i + 6, n6, feature, threshold, children)
                    n7 = _step(X, i + 7, n7, feature, threshold, children)
                out[i] += value[n0]
                out[i + 1] += value[n1]
                out[i + 2] += value[n2]
                out[i + 3] += value[n3]
                out[i + 4] += value[n4]
                out[i + 5] += value[n5]
                out[i + 6] += value[n6]
                out[i + 7] += value[n7]
                i += _LANES
            while i < end:
                node = root
                for _ in range(levels):
                    node = _step(X, i, node, feature, threshold, children)
                out[i] += value[node]
                i += 1


def warm() -> None:
    """Compile the kernel, or load it from numba's cache, on one row of a one-leaf tree."""
    one = np.zeros(1, dtype=np.uint32)
    t = Tables(children=np.zeros(3, dtype=np.uint32), feature=one, threshold=np.zeros(1),
               value=np.zeros(1), roots=one, depth=one, column=one)
    _walk(np.zeros((1, 1)), t.roots, t.depth, t.column, t.feature, t.threshold, t.children,
          t.value, np.zeros((1, 1)))
