"""The lean predict path answers exactly as the plain pipeline, over many random requests.

Each model below is fitted on a small frame with the dtypes training hands on (nullable ints,
booleans, text with missing values, datetimes...). Random requests in all three request shapes,
with missing values, unseen categories, values the coercion must convert and an occasional
infinity, go to a `Scorer` with the fast path and to one without: the response bodies (and
errors) must be byte for byte the same, and the fast path must have answered most of them.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, PolynomialFeatures, StandardScaler
from threadpoolctl import threadpool_limits

from mlops.core.spec import PipelineSpec
from mlops.model.features import build_pipeline
from serving import fastpath
from serving.bundle import Bundle, Feature
from serving.errors import ScoringInputError
from serving.fastpath import steps
from serving.scoring import Scorer

COLORS = ["red", "green", "blue", "amber", "teal", "plum"]
PLANS = ["basic", "plus", "pro"]
SPEC_COLUMNS = [
    {"name": "reading", "dtype": "float", "rules": {"max_null_fraction": 0.2}},
    {"name": "ratio", "dtype": "float"},  # float32 in the frame: the cast widens it
    {"name": "count", "dtype": "int"},
    {"name": "visits", "dtype": "int", "rules": {"max_null_fraction": 0.2}},
    {"name": "since", "dtype": "datetime"},
    {"name": "color", "dtype": "category"},
    {"name": "plan", "dtype": "string"},
    {"name": "flag", "dtype": "bool"},
    {"name": "paper", "dtype": "bool"},
]
SHIPPED = [c["name"] for c in SPEC_COLUMNS]
PLAIN = ["reading", "count", "color"]


def training_frame(rows: int = 600, seed: int = 0) -> pd.DataFrame:
    """Dtypes as validation leaves them; `paper` stays a numpy bool, `plan` pd.NA-string."""
    rng = np.random.default_rng(seed)
    reading = rng.normal(size=rows) * 3
    reading[rng.random(rows) < 0.1] = np.nan
    frame = pd.DataFrame({
        "reading": reading,
        "ratio": rng.random(rows).astype("float32"),
        "count": rng.integers(0, 60, rows).astype("int64"),
        "visits": pd.array(rng.integers(0, 9, rows), dtype="Int64"),
        "since": pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 900, rows), "D"),
        "color": pd.array(rng.choice(COLORS, rows, p=[.4, .3, .2, .06, .03, .01]), dtype="str"),
        "plan": pd.array(rng.choice(PLANS, rows), dtype="string"),
        "flag": pd.array(rng.random(rows) < 0.5, dtype="boolean"),
        "paper": rng.random(rows) < 0.3,
    })
    frame["since"] = frame["since"].astype("datetime64[ns]")
    frame.loc[rng.random(rows) < 0.1, "visits"] = pd.NA
    frame.loc[rng.random(rows) < 0.1, "color"] = np.nan
    frame.loc[rng.random(rows) < 0.1, "flag"] = pd.NA
    frame.loc[rng.random(rows) < 0.1, "plan"] = pd.NA
    frame.loc[rng.random(rows) < 0.05, "since"] = pd.NaT
    score = (np.nan_to_num(reading) + frame["count"] / 20 + (frame["color"] == "red")
             - frame["flag"].fillna(False).astype(float) + frame["paper"])
    frame["binary"] = (score + rng.normal(size=rows) > 1.5).astype("int64")
    frame["three"] = np.digitize(score + rng.normal(size=rows), [0.5, 2.0]).astype("int64")
    frame["amount"] = score * 10 + rng.normal(size=rows)
    return frame


def _spec(task: str, target: str, features: dict[str, Any], estimator: str,
          params: dict[str, Any]) -> PipelineSpec:
    label = {"name": target, "dtype": "int" if task == "classification" else "float"}
    return PipelineSpec.model_validate({
        "name": "fast", "data": {"url": "unused"}, "target": target, "task": task,
        "columns": [*SPEC_COLUMNS, label], "features": features,
        "model": {"estimator": estimator, "params": params},
        "evaluation": {"primary_metric": "roc_auc" if task == "classification" else "rmse"},
    })


HGB_C = "sklearn.ensemble.HistGradientBoostingClassifier"
HGB_R = "sklearn.ensemble.HistGradientBoostingRegressor"
SMALL = {"max_iter": 25, "random_state": 0}


def shipped(task: str, features: dict[str, Any], estimator: str = HGB_C,
            params: dict[str, Any] | None = None) -> Callable[[pd.DataFrame, str], Pipeline]:
    def fit(frame: pd.DataFrame, target: str) -> Pipeline:
        spec = _spec(task, target, features, estimator, SMALL if params is None else params)
        return build_pipeline(spec).fit(frame[SHIPPED], frame[target])

    return fit


def plain_mixed(frame: pd.DataFrame, target: str) -> Pipeline:
    """Like the benchmark's mixed model: no casts, pandas columns straight into sklearn."""
    pre = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
         ["reading", "count"]),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                              OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
         ["color"]),
    ])
    return Pipeline([("pre", pre), ("model", HistGradientBoostingClassifier(**SMALL))]).fit(
        frame[PLAIN], frame[target])


def plain_numeric(frame: pd.DataFrame, target: str) -> Pipeline:
    """The issue's setup: a scaler and the classifier, no ColumnTransformer."""
    model = make_pipeline(StandardScaler(), HistGradientBoostingClassifier(**SMALL))
    return model.fit(frame[["reading", "count"]], frame[target])


def bare_trees(frame: pd.DataFrame, target: str) -> Any:
    return HistGradientBoostingRegressor(**SMALL).fit(frame[["reading", "count"]],
                                                      frame[target])


def strict_one_hot(frame: pd.DataFrame, target: str) -> Pipeline:
    """An encoder that refuses unseen categories: those requests are declined, and the
    pipeline's own error must come back."""
    pre = ColumnTransformer([
        ("num", SimpleImputer(), ["reading", "count"]),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                              OneHotEncoder(handle_unknown="error", sparse_output=False)),
         ["color"]),
    ])
    return make_pipeline(pre, HistGradientBoostingClassifier(**SMALL)).fit(
        frame[PLAIN], frame[target])


STRICT = "one-hot that refuses unseen categories"
MODELS: dict[str, tuple[Callable[[pd.DataFrame, str], Any], str, list[str]]] = {
    # name: (fit, target, features)
    "shipped churn-like (ordinal, standard)": (shipped(
        "classification", {"numeric": {"impute": "median", "scale": "standard"},
                           "categorical": {"impute": "constant", "encode": "ordinal"}}),
        "binary", SHIPPED),
    "shipped one-hot, minmax, grouped rare colors, three classes": (shipped(
        "classification", {"numeric": {"impute": "mean", "scale": "minmax"},
                           "categorical": {"impute": "most_frequent", "encode": "onehot",
                                           "max_categories": 4}}),
        "three", SHIPPED),
    "shipped regression (robust, one-hot)": (shipped(
        "regression", {"numeric": {"impute": "median", "scale": "robust"},
                       "categorical": {"impute": "constant", "encode": "onehot"}}, HGB_R),
        "amount", SHIPPED),
    "shipped logistic regression (other estimators)": (shipped(
        "classification", {"numeric": {"impute": "median", "scale": "standard"},
                           "categorical": {"impute": "constant", "encode": "onehot"}},
        "sklearn.linear_model.LogisticRegression", {"max_iter": 2000}),
        "three", SHIPPED),
    "plain ColumnTransformer (imputers, scaler, one-hot)": (plain_mixed, "binary", PLAIN),
    "scaler and classifier": (plain_numeric, "binary", ["reading", "count"]),
    "bare regressor": (bare_trees, "amount", ["reading", "count"]),
    STRICT: (strict_one_hot, "binary", PLAIN),
}


def bundle_of(model: Any, frame: pd.DataFrame, features: list[str]) -> Bundle:
    dtypes = tuple(Feature(name, str(frame[name].dtype)) for name in features)
    return Bundle(model=model, manifest={"model_name": "fast", "version": "1"}, url="mem://",
                  features=dtypes)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """As the endpoint does: OpenMP threads only slow small predictions on a busy machine."""
    with threadpool_limits(1, user_api="openmp"):
        yield


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return training_frame()


# --- random requests ------------------------------------------------------------------------


def _number(rng: np.random.Generator) -> Any:
    if rng.random() < 0.04:
        return str(round(float(rng.normal()), 3))  # text that the coercion turns into a number
    return float(rng.normal() * 10 ** rng.integers(0, 3))


def _value(dtype: str, rng: np.random.Generator) -> Any:
    if dtype in ("float64", "float32"):
        return None if rng.random() < 0.12 and dtype == "float64" else _number(rng)
    if dtype in ("int64", "Int64"):
        return None if dtype == "Int64" and rng.random() < 0.15 else int(rng.integers(-3, 70))
    if dtype in ("boolean", "bool"):
        if dtype == "boolean" and rng.random() < 0.15:
            return None
        return [True, False, "yes", 0][int(rng.integers(0, 4))]
    if dtype == "datetime64[ns]":
        month, day = rng.integers(1, 13), rng.integers(1, 29)
        return None if rng.random() < 0.1 else f"2022-{month:02d}-{day:02d}T10:30:00"
    words = [*COLORS, *PLANS, "never-seen", 7, None]
    return words[int(rng.integers(0, len(words)))]


def _rows(rng: np.random.Generator) -> int:
    kind = rng.random()
    if kind < 0.4:
        return 1
    if kind < 0.75:
        return int(rng.integers(2, fastpath.WALK_MAX_ROWS + 1))
    return int(rng.integers(fastpath.WALK_MAX_ROWS + 1, fastpath.WALK_MAX_ROWS + 40))


def random_request(bundle: Bundle, rng: np.random.Generator, shape: str) -> Any:
    n = _rows(rng)
    columns = {f.name: [_value(f.dtype, rng) for _ in range(n)] for f in bundle.features}
    if rng.random() < 0.1:  # the coercion reads "inf"; scikit-learn's input checks refuse it
        columns["reading"][int(rng.integers(0, n))] = "inf"
    if shape == "columnar":
        return {"input_data": columns, "return_probabilities": True}
    names = list(columns)
    rows = [[columns[name][i] for name in names] for i in range(n)]
    if shape == "split":
        return {"input_data": {"columns": names, "index": list(range(n)), "data": rows},
                "return_probabilities": True}
    return {"input_data": [dict(zip(names, row, strict=True)) for row in rows],
            "return_probabilities": True}


def outcome(scorer: Scorer, payload: Any) -> tuple[Any, ...]:
    """What a client would see: the status and body bytes; plus the arrays' dtypes."""
    try:
        scored = scorer.score(payload)
    except ScoringInputError as exc:
        return exc.status, exc.message
    dtypes = (scored.predictions.dtype, getattr(scored.probabilities, "dtype", None))
    return 200, orjson.dumps(scored.body(), option=orjson.OPT_SERIALIZE_NUMPY), dtypes


class Counting:
    """Counts the requests the compiled pipeline answered (rather than declined)."""

    def __init__(self, compiled: fastpath.FastPipeline) -> None:
        self.compiled = compiled
        self.answered: list[int] = []

    def run(self, columns: Any, n_rows: int, probabilities: bool) -> Any:
        answer = self.compiled.run(columns, n_rows, probabilities)
        if answer is not None:
            self.answered.append(n_rows)
        return answer


@pytest.mark.parametrize("name", list(MODELS))
def test_fast_path_answers_exactly_as_the_pipeline(frame, name):
    fit, target, features = MODELS[name]
    bundle = bundle_of(fit(frame, target), frame, features)
    fast, plain = Scorer(bundle), Scorer(bundle, fast=False)
    assert fast.fast is not None, "this model should take the fast path"
    counting = Counting(fast.fast)
    fast.fast = counting  # type: ignore[assignment]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    requests = [random_request(bundle, rng, shape)
                for _ in range(25) for shape in ("columnar", "split", "records")]
    for payload in requests:
        assert outcome(fast, payload) == outcome(plain, payload), payload
    assert min(counting.answered) == 1
    if name == STRICT:  # every request with an unseen category was declined
        assert len(counting.answered) >= 0.15 * len(requests)
        return
    assert len(counting.answered) >= 0.6 * len(requests)  # declined: an infinity
    assert max(counting.answered) > fastpath.WALK_MAX_ROWS  # both ways of walking the trees


def test_declined_requests_get_the_pipelines_own_error(frame):
    fit, target, features = MODELS[STRICT]
    bundle = bundle_of(fit(frame, target), frame, features)
    payload = [{"reading": 1.0, "count": 3, "color": "never-seen"}]
    assert outcome(Scorer(bundle), payload) == outcome(Scorer(bundle, fast=False), payload)
    assert outcome(Scorer(bundle), payload)[0] == 422
    assert Scorer(bundle).fast.run([np.array([1.0]), np.array([3]), pd.array(
        ["never-seen"], dtype="str")], 1, False) is None


@pytest.mark.parametrize("rows", [steps.FACTORIZE_MIN_ROWS - 1, steps.FACTORIZE_MIN_ROWS, 3000])
def test_category_codes_are_the_same_factorized_and_cell_by_cell(rows, monkeypatch):
    """Long columns are factorized before their distinct values are looked up: the codes equal
    the cell-by-cell lookup's, for text, missing values and values that are not text."""
    pool = ["red", "green", "blue", "never", "", "Red", None, np.nan, pd.NA, 3, 3.0, True]
    rng = np.random.default_rng(rows)
    X = np.empty((rows, 2), dtype=object)
    X[:] = [[pool[i] for i in pair] for pair in rng.integers(0, len(pool), (rows, 2))]
    columns = [steps.Column({"red": 0, "green": 1, "blue": 2}, -1),
               steps.Column({"blue": 0, "": 1, "never": 2}, 7)]
    got = steps._codes(columns, X)
    monkeypatch.setattr(steps, "FACTORIZE_MIN_ROWS", 10**9)
    np.testing.assert_array_equal(got, steps._codes(columns, X))
    assert set(np.unique(got[:, 1])) == {0, 1, 2, 7}


@pytest.mark.parametrize("rows", [1, 5, fastpath.WALK_MAX_ROWS, fastpath.WALK_MAX_ROWS + 1, 300])
def test_tree_sums_are_bit_identical(frame, rows):
    model = MODELS["shipped one-hot, minmax, grouped rare colors, three classes"][0](
        frame, "three")
    trees = model[-1]
    rng = np.random.default_rng(rows)
    X = rng.normal(size=(rows, trees.n_features_in_)) * 2
    X[rng.random(X.shape) < 0.1] = np.nan
    X[rng.random(X.shape) < 0.02] = np.inf
    X[rng.random(X.shape) < 0.02] = -np.inf
    forest = fastpath.trees.Forest(trees)
    np.testing.assert_array_equal(forest.raw(X), trees._raw_predict(X))
    assert forest.raw(X).tobytes() == trees._raw_predict(X).tobytes()


@pytest.mark.parametrize(
    ("step", "words"),
    [(OneHotEncoder(drop="first", sparse_output=False), "dropped"),
     (PolynomialFeatures(), "PolynomialFeatures")],
)
def test_unsupported_steps_keep_the_plain_pipeline(frame, step, words, caplog):
    columns = ["reading", "count"] if words == "PolynomialFeatures" else ["color"]
    pre = ColumnTransformer([("one", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                                   step), columns)])
    model = make_pipeline(pre, LogisticRegression(max_iter=5000)).fit(frame[columns],
                                                                  frame["binary"])
    bundle = bundle_of(model, frame, columns)
    with caplog.at_level(logging.INFO, logger="serving.scoring"):
        scorer = Scorer(bundle)
    assert scorer.fast is None
    assert words in caplog.text
    assert scorer.path.startswith("plain pipeline (") and words in scorer.path
    rows = frame[columns].head(5).astype(object).where(frame[columns].head(5).notna(), None)
    payload = {"input_data": rows.to_dict(orient="list")}
    expected = model.predict(frame[columns].head(5)).tolist()
    assert scorer.score(payload).predictions.tolist() == expected


def test_a_wrong_compiled_step_is_caught_at_load_and_not_used(frame, monkeypatch, caplog):
    def no_centering(step: Any, kind: str) -> fastpath.common.Step:
        return lambda X: X / step.scale_

    entry = fastpath.steps.STEPS["sklearn.preprocessing._data.StandardScaler"]
    monkeypatch.setitem(fastpath.steps.STEPS, "sklearn.preprocessing._data.StandardScaler",
                        (no_centering, *entry[1:]))
    fit, target, features = MODELS["scaler and classifier"]
    bundle = bundle_of(fit(frame, target), frame, features)
    with caplog.at_level(logging.INFO, logger="serving.scoring"):
        scorer = Scorer(bundle)
    assert scorer.fast is None
    assert "differ" in caplog.text


def test_a_fast_path_that_never_answers_is_not_trusted(frame, monkeypatch):
    fit, target, features = MODELS["scaler and classifier"]
    bundle = bundle_of(fit(frame, target), frame, features)
    monkeypatch.setattr(fastpath.FastPipeline, "run", lambda self, *args: None)
    scorer = Scorer(bundle)
    assert scorer.fast is None
    assert "no probe rows could be compared" in scorer.path


def test_a_fitted_attribute_missing_keeps_the_plain_pipeline(frame):
    fit, target, features = MODELS["plain ColumnTransformer (imputers, scaler, one-hot)"]
    model = fit(frame, target)
    del model[0].transformers_[0][1][0]._fill_dtype  # as if another scikit-learn wrote it
    scorer = Scorer(bundle_of(model, frame, features))
    assert scorer.fast is None
    assert "reading the fitted pipeline failed" in scorer.path
