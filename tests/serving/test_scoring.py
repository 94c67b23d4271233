"""The scoring core, called directly: request shapes, column matching, dtypes, typed errors."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pytest

from mlops.endpoint.payloads import frame_to_request
from serving.bundle import Bundle, Feature
from serving.coercion import VECTOR_MIN_ROWS, coercer_for
from serving.columns import normalize_name
from serving.errors import ScoringInputError
from serving.request_shapes import parse_json, raw_table, wants_probabilities
from serving.scoring import Scorer
from tests.serving._models import FEATURES


@pytest.fixture(scope="module")
def scorer(toys) -> Scorer:
    return Scorer(toys.bundle(toys.v1))


@pytest.fixture(scope="module")
def rows(toys) -> pd.DataFrame:
    return toys.frame[FEATURES].head(12)


def _records(frame: pd.DataFrame) -> list[dict]:
    return orjson.loads(frame.to_json(orient="records"))


def _columnar(frame: pd.DataFrame) -> dict:
    return {"input_data": {k: list(v.values()) for k, v in orjson.loads(frame.to_json()).items()}}


def test_every_shape_predicts_like_the_pipeline(scorer, rows):
    expected = scorer.bundle.model.predict(rows).tolist()
    shapes = {
        "columnar": _columnar(rows),
        "split": frame_to_request(rows),
        "records": _records(rows),
        "data records": {"data": _records(rows)},
        "input_data records": {"input_data": _records(rows)},
    }
    for name, payload in shapes.items():
        assert scorer.score(payload).predictions.tolist() == expected, name


def test_columns_are_matched_reordered_and_extras_ignored(scorer, rows):
    expected = scorer.bundle.model.predict(rows).tolist()
    renamed = rows.rename(columns={"num_a": "NUM-A", "Tenure Months": "tenure_months"})
    shuffled = renamed[["cat_c", "tenure_months", "NUM-A"]].assign(unused=1, other="x")
    scored = scorer.score(_records(shuffled))
    assert list(scored.frame.columns) == FEATURES
    assert scored.predictions.tolist() == expected


def test_frame_has_training_dtypes(scorer, toys, rows):
    scored = scorer.score(_records(rows))
    assert scored.frame.dtypes.astype(str).tolist() == [
        str(toys.frame[name].dtype) for name in FEATURES
    ]


def test_probabilities_only_when_asked(scorer, rows):
    plain = scorer.score(_records(rows)).body()
    assert set(plain) == {"predictions"}
    asked = scorer.score({"input_data": _records(rows), "return_probabilities": True}).body()
    assert asked["classes"] == [0, 1]
    np.testing.assert_allclose(asked["probabilities"], scorer.bundle.model.predict_proba(rows))


@pytest.mark.parametrize(
    ("payload", "status", "words"),
    [
        ({"rows": []}, 400, "input_data"),
        ("just text", 400, "JSON object"),
        ([1, 2], 400, "records"),
        ({"input_data": {"num_a": 1}}, 400, "list"),
        ({"input_data": {"num_a": [1], "cat_c": [1, 2]}}, 400, "different lengths"),
        ({"input_data": {"columns": ["a"], "data": [[1, 2]]}}, 400, "1 values"),
        ({"input_data": 5}, 400, "input_data"),
        ([], 422, "no rows"),
        ({"input_data": {}}, 422, "no rows"),
        ([{"num_a": 1.0}], 422, "'Tenure Months', 'cat_c'"),
        ([{"num_a": "abc", "Tenure Months": 3, "cat_c": "red"}], 422, "'num_a'"),
        ([{"num_a": 1.0, "Tenure Months": 2.5, "cat_c": "red"}], 422, "'Tenure Months'"),
        ([{"num_a": 1.0, "Tenure Months": None, "cat_c": "red"}], 422, "nulls"),
        ([{"num_a": 1.0, "Tenure Months": 3, "cat_c": {"x": 1}}], 422, "'cat_c'"),
        ([{"num_a": [1.0, 2.0], "Tenure Months": 3, "cat_c": "red"}], 422, "'num_a'"),
        ({"input_data": [], "return_probabilities": "yes"}, 400, "true or false"),
    ],
)
def test_bad_input_is_a_typed_error(scorer, payload, status, words):
    with pytest.raises(ScoringInputError) as caught:
        scorer.score(payload, wants_probabilities(payload))
    assert caught.value.status == status
    assert words in caught.value.message


def test_malformed_json_is_400():
    with pytest.raises(ScoringInputError) as caught:
        parse_json(b"{not json")
    assert caught.value.status == 400


def test_split_form_with_feature_named_data_stays_columnar():
    table = raw_table({"input_data": {"columns": [1], "data": [2], "other": [3]}})
    assert table.names == ("columns", "data", "other")


def test_normalize_name_matches_the_spec_rule():
    assert normalize_name("Period ID") == normalize_name("period_id") == "periodid"
    assert normalize_name("a.b-c d") == "abcd"


@pytest.mark.parametrize(
    ("dtype", "values", "expected"),
    [
        ("float64", [1, "2.5", None], [1.0, 2.5, np.nan]),
        ("int64", [1, 2.0, "3"], [1, 2, 3]),
        ("Int64", [1, None], [1, pd.NA]),
        ("boolean", [True, "false", 0, None], [True, False, False, pd.NA]),
        ("bool", [True, False], [True, False]),
        ("str", ["a", None, 3], ["a", np.nan, "3"]),
        ("string", ["a", None], ["a", pd.NA]),
        ("datetime64[ns]", ["2024-01-02T03:04:05", None], [pd.Timestamp("2024-01-02 03:04:05"),
                                                          pd.NaT]),
        ("datetime64[ns]", ["2024-01-02T03:04:05Z"], [pd.Timestamp("2024-01-02 03:04:05")]),
    ],
)
def test_coercion_as_in_training(dtype, values, expected):
    result = pd.Series(coercer_for(dtype)(values))
    assert str(result.dtype) == dtype
    pd.testing.assert_series_equal(result, pd.Series(expected, dtype=dtype))


@pytest.mark.parametrize(
    ("dtype", "values"),
    [("boolean", ["maybe"]), ("bool", [None]), ("datetime64[ns]", ["not a date"]),
     ("Int64", [1.5]), ("float64", [{"a": 1}]),
     # uneven nested lists: numpy cannot build an array of them
     ("int64", [[1], [1, 2]]), ("Int64", [1, [1]]), ("bool", [[1], [1, 2]]),
     ("boolean", [[1, 2], [1]]), ("int32", [[1], 1]),
     # beyond the dtype's range: refused, never wrapped
     ("int64", [1e30]), ("int64", [2**63]), ("int64", [2**64 - 1]), ("Int64", [2**63, None]),
     ("int64", [-(2**63) - 1]), ("int32", [2**31]), ("int32", [-(2**31) - 1.0]),
     ("float32", [1e39])],
)
def test_uncoercible_values_name_the_column(dtype, values):
    bundle = Bundle(model=None, manifest={}, url="mem://", features=(Feature("Col X", dtype),))
    with pytest.raises(ScoringInputError) as caught:
        Scorer(bundle).frame(raw_table({"input_data": {"col_x": values}}))
    assert caught.value.status == 422
    assert "'col_x'" in caught.value.message and dtype in caught.value.message


@pytest.mark.parametrize("dtype", ["str", "string", "category"])
def test_text_columns_are_the_arrays_pandas_builds(dtype):
    values = ["a", None, "Zürich", "", "a"]
    built = coercer_for(dtype)(values)
    expected = pd.array(values, dtype="str" if dtype == "category" else dtype)
    assert type(built) is type(expected) and built.dtype == expected.dtype
    pd.testing.assert_extension_array_equal(built, expected)
    mixed = ["a", 3, None, True]  # not all text: pandas converts them
    pd.testing.assert_extension_array_equal(coercer_for(dtype)(mixed),
                                            pd.array(mixed, dtype=expected.dtype))


@pytest.mark.parametrize("dtype", ["str", "string", "category"])
@pytest.mark.parametrize("rows", [VECTOR_MIN_ROWS - 1, VECTOR_MIN_ROWS, 3000])
@pytest.mark.parametrize("pool", [["a", None, "Zürich", "", np.nan], ["a", 3, None, True, 2.5]])
def test_long_text_arrays_are_the_arrays_pandas_builds(dtype, rows, pool):
    """A batch's long object array (checked and converted in C) gives the very array the
    value-by-value path gives for the same values, with NaN missing as None is."""
    values = np.empty(rows, dtype=object)
    values[:] = [pool[i] for i in np.random.default_rng(rows).integers(0, len(pool), rows)]
    expected = pd.array(list(values), dtype="str" if dtype == "category" else dtype)
    built = coercer_for(dtype)(values)
    assert type(built) is type(expected) and built.dtype == expected.dtype
    pd.testing.assert_extension_array_equal(built, expected)


@pytest.mark.parametrize(
    ("dtype", "values"),
    [("int64", [2**63 - 1, -(2**63)]), ("Int64", [2**63 - 1, -(2**63), None]),
     ("int32", [2**31 - 1, -(2**31)]), ("int32", [2147483647.0, -2147483648.0]),
     ("float32", [3.4e38, -3.4e38])],
)
def test_values_at_the_ends_of_a_range_are_kept_exactly(dtype, values):
    built = pd.array(coercer_for(dtype)(values), dtype=dtype)
    assert built.tolist() == pd.array(values, dtype=dtype).tolist()


def test_unique_extra_names_are_not_kept_per_request(scorer, rows):
    record = _records(rows.head(1))[0]
    scorer.score([record])
    kept = dict(scorer._matches)
    assert tuple(record) in kept  # the usual request is remembered
    for i in range(3):
        scorer.score([{**record, **{f"extra_{i}_{j}": 0 for j in range(200)}}])
        scorer.score([{**record, f"x{i}" * 20_000: 0}])  # one long name
    assert scorer._matches == kept
