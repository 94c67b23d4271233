"""The two drift scores computed here instead of by Evidently, on every row (see `compute`).

Each equals Evidently's score of the same name; the tests check them against scipy.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def wasserstein_normed(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> float:
    """Evidently's ``wasserstein`` score: W1(ref, cur) / max(std(ref), 0.001), both sorted.

    W1 is the area between the two empirical CDFs. Merging two sorted runs is linear (a stable
    argsort of their concatenation is one timsort merge); a cumulative count then gives each
    side's CDF at every point of the union, the values scipy finds by binary search.
    """
    norm = max(float(np.std(ref_sorted)), 0.001)
    merged = np.concatenate((ref_sorted, cur_sorted))
    order = np.argsort(merged, kind="stable")
    deltas = np.diff(merged[order])
    del merged
    from_ref = order[:-1] < ref_sorted.size
    del order
    ref_count = np.cumsum(from_ref)
    cur_count = np.arange(1, from_ref.size + 1) - ref_count
    gap = np.abs(ref_count / ref_sorted.size - cur_count / cur_sorted.size)
    return float(np.sum(gap * deltas)) / norm


def jensenshannon_counts(ref: dict[Any, int], cur: dict[Any, int]) -> float:
    """Evidently's ``jensenshannon`` score of a categorical column from its value counts."""
    from scipy.spatial import distance  # noqa: PLC0415

    keys = list(ref.keys() | cur.keys())
    ref_total, cur_total = sum(ref.values()), sum(cur.values())
    p = np.array([ref.get(k, 0) / ref_total for k in keys])
    q = np.array([cur.get(k, 0) / cur_total for k in keys])
    return float(distance.jensenshannon(p, q))
