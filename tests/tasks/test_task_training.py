"""tasks/training.py: train_model fits one deterministic Pipeline; bad model specs fail clearly."""

from __future__ import annotations

import pickle
import subprocess
import sys
from datetime import UTC, datetime

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from mlops.core.errors import MlopsError, SpecError, TrainingError
from mlops.core.spec import load_spec
from mlops.data.frames import load_frame
from mlops.model.results import TrainedModel
from tasks.training import train_model
from tests.tasks._stages import (
    CHURN_YAML,
    ROOT,
    STAGE_NAMES,
    Stages,
    fresh_ref,
    run_stages,
    write_spec,
)

pytestmark = [pytest.mark.service, pytest.mark.usefixtures("prefect_server")]


def _features(stages: Stages):
    return load_frame(stages.split.test, [c.name for c in stages.spec.feature_columns])


def test_trains_preprocessing_and_estimator_as_one_pipeline(stages):
    trained = stages.trained
    assert isinstance(trained, TrainedModel)
    assert isinstance(trained.pipeline, Pipeline)
    assert [name for name, _ in trained.pipeline.steps] == ["preprocess", "model"]
    model = trained.pipeline[-1]
    assert isinstance(model, HistGradientBoostingClassifier)
    assert (model.max_iter, model.random_state) == (60, 42)  # from the spec's params
    assert trained.train_rows == stages.split.train.rows == 1125
    assert datetime.fromisoformat(trained.trained_at).tzinfo == UTC
    assert trained.fit_seconds > 0
    scores = trained.pipeline.predict_proba(_features(stages))[:, 1]
    assert roc_auc_score(load_frame(stages.split.test)["churned"], scores) > 0.7


def test_training_is_deterministic_and_a_cached_rerun_keeps_its_time(stages):
    cached = train_model(stages.split, stages.data, stages.spec, return_state=True)
    assert cached.name == "Cached"
    assert cached.result().trained_at == stages.trained.trained_at
    refit = train_model.with_options(refresh_cache=True)(stages.split, stages.data, stages.spec)
    assert refit.trained_at != stages.trained.trained_at
    np.testing.assert_array_equal(
        refit.pipeline.predict_proba(_features(stages)),
        stages.trained.pipeline.predict_proba(_features(stages)),
    )


def test_the_pipeline_of_a_stored_result_is_unpickled_only_when_used(stages):
    # Prefect stores the result as a pickle; a re-run that retains its champion never uses the
    # pipeline, so reading the result back must not import scikit-learn (1-2 s).
    probe = (
        "import pickle, sys\n"
        "trained = pickle.loads(sys.stdin.buffer.read())\n"
        "print('sklearn' in sys.modules, trained.train_rows, trained.trained_at)\n"
        "print(type(trained.pipeline).__name__, 'sklearn' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], input=pickle.dumps(stages.trained),
                          cwd=ROOT, capture_output=True, check=True)
    assert done.stdout.decode().split() == [
        "False", "1125", stages.trained.trained_at, "Pipeline", "True"
    ]
    again = pickle.loads(pickle.dumps(stages.trained))
    np.testing.assert_array_equal(
        again.pipeline.predict_proba(_features(stages)),
        stages.trained.pipeline.predict_proba(_features(stages)),
    )


def test_unknown_estimator_stops_before_any_data_is_read(tmp_path, churn_dir, state_dir):
    spec_path = write_spec(tmp_path, "nope", {"model.estimator": "sklearn.nope.Nothing"})
    stages = Stages()
    with pytest.raises(MlopsError) as info:
        run_stages(spec_path, churn_dir, run_dir=str(tmp_path / "run"), stages=stages)
    assert type(info.value) is SpecError
    assert STAGE_NAMES[len(stages.done)] == "read_spec"
    assert "model.estimator: cannot import 'sklearn.nope.Nothing'" in str(info.value)
    assert not (state_dir / "registry").exists()


@pytest.mark.parametrize(
    ("changes", "error", "names"),
    [
        ({"model.estimator": "collections.OrderedDict"}, SpecError,
         ("collections.OrderedDict", "has no fit/predict")),
        ({"model.params": {"max_iter": 10, "no_such_option": 1}}, TrainingError,
         ("model.params", "no_such_option")),
        ({"model.params": {"max_iter": -1}}, TrainingError, ("model.params", "max_iter")),
    ],
    ids=["not-an-estimator", "unknown-parameter", "invalid-parameter"],
)
def test_a_bad_model_spec_names_the_field(stages, churn_dir, changes, error, names):
    spec = load_spec(CHURN_YAML, {"data.url": churn_dir, **changes})
    with pytest.raises(error) as info:
        train_model(stages.split, fresh_ref(), spec)
    for name in names:
        assert name in str(info.value)


def test_training_is_not_retried():
    assert train_model.retries == 0  # computation: the same inputs fail the same way
