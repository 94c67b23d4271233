"""The casts every fitted pipeline starts with: same values as pandas' own conversion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serving.transforms import to_category_array


def _reference(X: object) -> np.ndarray:
    """What `to_category_array` computed before it shared strings: one new `str` per cell."""
    return pd.DataFrame(X).astype("string").to_numpy(dtype=object, na_value=np.nan)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Element-wise equal, `np.nan` matching `np.nan`, and the same Python types."""
    if a.shape != b.shape:
        return False
    for x, y in zip(a.ravel(), b.ravel(), strict=True):
        if isinstance(x, float) and np.isnan(x):
            if not (isinstance(y, float) and np.isnan(y)):
                return False
        elif type(x) is not type(y) or x != y:
            return False
    return True


FRAMES = {
    "strings with nulls": pd.DataFrame(
        {"plan": ["basic", None, "pro", "basic", np.nan], "region": list("abcab")}
    ),
    "nullable string dtype": pd.DataFrame(
        {"plan": pd.array(["x", pd.NA, "y", "x", "x"], dtype="string")}
    ),
    "booleans and ints": pd.DataFrame(
        {"flag": [True, False, None, True, False], "code": [1, 2, 2, 1, 3]}
    ),
    "categorical dtype": pd.DataFrame(
        {"tier": pd.Categorical(["gold", "silver", None, "gold", "gold"])}
    ),
    "one row": pd.DataFrame({"plan": ["pro"], "region": [None]}),
    "no rows": pd.DataFrame({"plan": pd.Series([], dtype=object)}),
    "all missing": pd.DataFrame({"plan": [None, None, np.nan]}),
}


@pytest.mark.parametrize("name", list(FRAMES))
def test_to_category_array_equals_pandas_conversion(name: str) -> None:
    frame = FRAMES[name]
    got = to_category_array(frame)
    assert got.dtype == object
    assert _same(got, _reference(frame)), (got, _reference(frame))


def test_to_category_array_from_an_object_array() -> None:
    X = np.array([["a", None], ["b", "c"], ["a", np.nan]], dtype=object)
    assert _same(to_category_array(X), _reference(X))


def test_to_category_array_shares_one_string_per_distinct_value() -> None:
    """The memory saving itself: 10,000 cells of two values hold two string objects."""
    # distinct objects in (slicing makes a new string each time), shared objects out
    frame = pd.DataFrame({"plan": [("basic", "pro")[i % 2] + str(i) for i in range(10_000)]})
    frame["plan"] = frame["plan"].str.rstrip("0123456789")
    got = to_category_array(frame)
    assert len({id(v) for v in got[:, 0]}) == 2
    assert len({id(v) for v in _reference(frame)[:, 0]}) > 2
