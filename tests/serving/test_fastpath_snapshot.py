"""A fast path stored as a snapshot and read back answers exactly as the pipeline.

Every HistGradientBoosting model of `test_fastpath`'s table goes through `Scorer.snapshot` and
`Scorer.restored` (no scikit-learn object in the restored pipeline); the same random requests,
and batches large enough for the compiled kernel, must get byte-identical answers from the
restored scorer and the plain pipeline, with numba and without it. A row the fast path
declines loads the model, once. A snapshot that does not fit is refused, never half read.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import zlib
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from serving.bundle import Bundle
from serving.fastpath import Unsupported, snapshot, trees
from serving.scoring import Scorer
from tests.serving.test_fastpath import (
    MODELS,
    STRICT,
    bundle_of,
    frame,  # noqa: F401 - the fixture
    one_thread,  # noqa: F401 - the fixture
    outcome,
    random_request,
)

STORED = [name for name in MODELS if "logistic" not in name and "scaler and" not in name
          and "plain ColumnTransformer" not in name]


class Loads:
    """The restored scorer's model loader, counting its calls."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle, self.calls = bundle, 0

    def __call__(self) -> Bundle:
        self.calls += 1
        return self.bundle


def restored(bundle: Bundle) -> tuple[Scorer, Loads]:
    data = Scorer(bundle).snapshot()
    assert data is not None, "this model's fast path should be stored"
    loads = Loads(bundle)
    scorer = Scorer.restored(Bundle(None, bundle.manifest, bundle.url, bundle.features), data,
                             loads)
    assert scorer.bundle.model is None
    return scorer, loads


def _batch(bundle: Bundle, rows: int, seed: int) -> dict[str, Any]:
    """A columnar request of `rows` rows without values the fast path declines."""
    rng = np.random.default_rng(seed)
    payload = random_request(bundle, rng, "columnar")
    columns = {name: [v for v in values if v != "inf"] for name, values in
               payload["input_data"].items()}
    return {"input_data": {name: [values[i % len(values)] for i in range(rows)] for name, values
                           in columns.items()}, "return_probabilities": True}


@pytest.fixture(params=["numba", "no numba"])
def kernel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "no numba":
        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, *a: None if name == "numba" else real(name, *a))
    trees.compiled_kernel.cache_clear()
    yield request.param
    trees.compiled_kernel.cache_clear()


@pytest.mark.parametrize("name", STORED)
def test_a_restored_fast_path_answers_exactly_as_the_pipeline(frame, name, kernel):  # noqa: F811
    fit, target, features = MODELS[name]
    bundle = bundle_of(fit(frame, target), frame, features)
    scorer, loads = restored(bundle)
    declines = Declines(scorer)
    plain = Scorer(bundle, fast=False)
    assert scorer.classes == plain.classes
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    requests = [random_request(bundle, rng, shape)
                for _ in range(12) for shape in ("columnar", "split", "records")]
    requests += [_batch(bundle, rows, seed) for seed, rows in enumerate((300, 5000))]
    for payload in requests:
        assert outcome(scorer, payload) == outcome(plain, payload), payload
    if kernel == "no numba":
        assert scorer.fast.estimator.forest._tables is None
    assert loads.calls == (1 if declines.count else 0)  # a declined row loads the model, once
    assert name != STRICT or declines.count


class Declines:
    """Counts the requests the restored pipeline declined (the plain pipeline answers)."""

    def __init__(self, scorer: Scorer) -> None:
        self.compiled, self.count = scorer.fast, 0
        scorer.fast = self  # type: ignore[assignment]

    def run(self, columns: Any, n_rows: int, probabilities: bool) -> Any:
        answer = self.compiled.run(columns, n_rows, probabilities)
        self.count += answer is None
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.compiled, name)


def test_the_restored_pipeline_holds_no_scikit_learn_object(frame):  # noqa: F811
    fit, target, features = MODELS["shipped one-hot, minmax, grouped rare colors, three classes"]
    scorer, _ = restored(bundle_of(fit(frame, target), frame, features))
    seen: list[str] = []

    def walk(value: Any) -> None:
        seen.append(type(value).__module__)
        for inner in (vars(value).values() if hasattr(value, "__dict__") else
                      value.values() if isinstance(value, dict) else
                      value if isinstance(value, list | tuple) else ()):
            walk(inner)

    walk(scorer.fast)
    assert seen and not [m for m in seen if m.startswith("sklearn")]


def test_a_log_link_regressor_is_stored_and_answers_the_same(frame):  # noqa: F811
    X = frame[["reading", "count"]].fillna(0.0)
    y = np.abs(frame["amount"]) + 0.1
    model = make_pipeline(StandardScaler(), HistGradientBoostingRegressor(
        loss="poisson", max_iter=20, random_state=0)).fit(X, y)
    bundle = bundle_of(model, frame.fillna({"reading": 0.0}), ["reading", "count"])
    scorer, _ = restored(bundle)
    assert scorer.fast.estimator.link == "log"
    payload = _batch(bundle, 700, seed=3)
    assert outcome(scorer, payload) == outcome(Scorer(bundle, fast=False), payload)


def test_a_model_without_a_stored_form_gets_no_snapshot(frame, caplog):  # noqa: F811
    fit, target, features = MODELS["shipped logistic regression (other estimators)"]
    scorer = Scorer(bundle_of(fit(frame, target), frame, features))
    assert scorer.fast is not None
    with caplog.at_level(logging.INFO, logger="serving.scoring"):
        assert scorer.snapshot() is None
    assert "no snapshot of its fast path" in caplog.text


def _rewritten(data: bytes, change: Any) -> bytes:
    with np.load(io.BytesIO(data), allow_pickle=False) as members:
        arrays = {name: members[name] for name in members.files}
    structure = json.loads(str(arrays["structure"]))
    change(structure, arrays)
    arrays["structure"] = np.array(json.dumps(structure))
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def _unknown_type(structure: dict[str, Any], arrays: dict[str, Any]) -> None:
    structure["pipeline"]["branches"]["$tuple"][0]["$"] = "os.system"


def _other_format(structure: dict[str, Any], arrays: dict[str, Any]) -> None:
    structure["format"] = snapshot.FORMAT + 1


def _pickled_member(structure: dict[str, Any], arrays: dict[str, Any]) -> None:
    arrays["a0"] = np.array([{"not": "plain"}], dtype=object)


def _missing_array(structure: dict[str, Any], arrays: dict[str, Any]) -> None:
    del arrays["a0"]


def _broken_forest(structure: dict[str, Any], arrays: dict[str, Any]) -> None:
    key = structure["pipeline"]["estimator"]["forest"]["children"]["$array"]
    arrays[key] = arrays[key] + 10**6


@pytest.mark.parametrize(("change", "words"), [
    (_unknown_type, "unknown type 'os.system'"), (_other_format, "format"),
    (_pickled_member, "cannot be read"), (_missing_array, "cannot be read"),
    (_broken_forest, "do not fit together")])
def test_a_snapshot_that_does_not_fit_is_refused(frame, change, words):  # noqa: F811
    fit, target, features = MODELS["shipped one-hot, minmax, grouped rare colors, three classes"]
    data = Scorer(bundle_of(fit(frame, target), frame, features)).snapshot()
    with pytest.raises(Unsupported, match=words):
        snapshot.load(_rewritten(data, change))
    with pytest.raises(Unsupported, match="cannot be read"):
        snapshot.load(b"not a snapshot")


def test_a_snapshot_with_a_compressed_member_is_refused(frame):  # noqa: F811
    """`dump` stores members as they are, so a read takes no more memory than the file."""
    fit, target, features = MODELS["shipped one-hot, minmax, grouped rare colors, three classes"]
    data = Scorer(bundle_of(fit(frame, target), frame, features)).snapshot()
    snapshot.load(data)
    with np.load(io.BytesIO(data), allow_pickle=False) as members:
        arrays = {name: members[name] for name in members.files}
    out = io.BytesIO()
    np.savez_compressed(out, **arrays)
    with pytest.raises(Unsupported, match="compressed member"):
        snapshot.load(out.getvalue())


def test_a_snapshot_of_other_features_is_refused(frame):  # noqa: F811
    fit, target, features = MODELS["shipped one-hot, minmax, grouped rare colors, three classes"]
    bundle = bundle_of(fit(frame, target), frame, features)
    data = Scorer(bundle).snapshot()
    other = bundle_of(None, frame.assign(count=frame["count"].astype("float64")), features)
    with pytest.raises(Unsupported, match="other features"):
        Scorer.restored(other, data, Loads(bundle))
