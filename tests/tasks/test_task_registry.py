"""tasks/registry.py: register_model writes the next version with its full lineage."""

from __future__ import annotations

import hashlib
import platform

import numpy as np
import pandas as pd
import pytest
import sklearn
from prefect import flow

from mlops.core.errors import RegistryError
from mlops.core.lineage import code_version
from mlops.core.spec import load_spec
from mlops.data.frames import load_frame
from mlops.model.bundle import HOLDOUT_FILE
from mlops.registry.local import LocalRegistry
from serving.bundle import MODEL_FILE, REFERENCE_FILE
from tasks._options import IO_RETRY_DELAYS, retry_transient
from tasks.evaluation import evaluate_vs_champion
from tasks.registry import register_model
from tests.tasks._stages import CHURN_YAML, task_run

pytestmark = [pytest.mark.service, pytest.mark.usefixtures("prefect_server")]


@pytest.fixture
def evaluation(stages, tmp_path):
    return evaluate_vs_champion(
        stages.trained, stages.split, stages.data, stages.spec, str(tmp_path / "run")
    )


def test_registers_numbered_versions_with_their_lineage(stages, evaluation, state_dir):
    args = (stages.trained, stages.split, stages.data, stages.spec, evaluation, stages.raw.rows)
    first = register_model(*args)

    @flow(name="register-in-a-flow")
    def register_in_a_flow():
        return register_model(*args)

    state = register_in_a_flow(return_state=True)
    second = state.result()
    assert (first.version, second.version) == (1, 2)
    registry = LocalRegistry(str(state_dir / "registry"))
    assert registry.versions("churn") == [1, 2]
    assert registry.alias("churn") is None  # promotion, not registration, moves the champion

    manifest = registry.get("churn", 2).manifest
    assert manifest == second.manifest
    assert manifest["flow_run_id"] == str(state.state_details.flow_run_id)
    assert registry.get("churn", 1).manifest["flow_run_id"] is None  # registered outside a flow
    assert manifest["model_name"] == "churn" and manifest["version"] == 2
    assert manifest["trained_at"] == stages.trained.trained_at
    assert (manifest["source_rows"], manifest["clean_rows"]) == (1500, 1500)
    assert (manifest["train_rows"], manifest["holdout_rows"]) == (1125, 375)
    assert manifest["sklearn_version"] == sklearn.__version__
    assert manifest["python_version"] == platform.python_version()
    names = [c.name for c in stages.spec.feature_columns]
    train = load_frame(stages.split.train)
    assert manifest["features"] == [{"name": n, "dtype": str(train[n].dtype)} for n in names]
    assert {"name": "tenure_months", "dtype": "int64"} in manifest["features"]
    assert manifest["metrics"] == pytest.approx(evaluation.candidate_metrics)
    assert manifest["data_fingerprint"] == stages.data.fingerprint
    assert manifest["data_url"] == stages.data.url
    assert manifest["spec_hash"] == stages.spec.spec_hash()
    assert manifest["code_version"] == code_version()
    assert manifest["classes"] == [0, 1]
    assert manifest["estimator"] == "sklearn.ensemble.HistGradientBoostingClassifier"

    folder = state_dir / "registry" / "churn" / "2"
    model_bytes = (folder / MODEL_FILE).read_bytes()
    assert manifest["model_sha256"] == hashlib.sha256(model_bytes).hexdigest()
    reference = pd.read_parquet(folder / REFERENCE_FILE)
    assert list(reference.columns) == [*names, "churned"]
    assert len(reference) == 1125  # every training row: fewer than reference_rows
    assert "customer_id" not in reference.columns  # an id, not a feature

    holdout = pd.read_parquet(folder / HOLDOUT_FILE)  # its trusted holdout: the judged rows
    judged = load_frame(stages.split.test, [*names, "churned"])
    assert manifest["trusted_holdout_rows"] == len(holdout) == len(judged) == 375
    order = ["tenure_months", "age", "monthly_charges"]
    pd.testing.assert_frame_equal(holdout.sort_values(order).reset_index(drop=True),
                                  judged.sort_values(order).reset_index(drop=True))

    loaded = registry.load("churn", 2).model
    rows = load_frame(stages.split.test, names)
    np.testing.assert_array_equal(
        loaded.predict_proba(rows), stages.trained.pipeline.predict_proba(rows)
    )


def test_a_refused_registry_fails_once_and_writes_nothing(
    stages, evaluation, churn_dir, state_dir, monkeypatch
):
    """An Azure ML registry that refuses the credential: a RegistryError saying so, no retries
    (a refused credential will not be accepted on retry), nothing written anywhere."""
    from azure.core.exceptions import ClientAuthenticationError

    import mlops.azureml.client

    class RefusedCredential:
        def get_token(self, *scopes, **kwargs):
            raise ClientAuthenticationError("no credential in this test")

        get_token_info = get_token

    monkeypatch.setattr(mlops.azureml.client, "credential", RefusedCredential)
    assert register_model.retries == len(IO_RETRY_DELAYS)
    assert register_model.retry_condition_fn is retry_transient
    spec = load_spec(CHURN_YAML, {
        "data.url": churn_dir, "registry.backend": "azureml", "endpoint.backend": "azureml",
        "azureml": {"subscription_id": "00000000-0000-0000-0000-000000000000",
                    "resource_group": "rg", "workspace": "ws"},
    })
    state = register_model.with_options(retry_delay_seconds=0)(
        stages.trained, stages.split, stages.data, spec, evaluation, 1500, return_state=True
    )
    with pytest.raises(RegistryError, match="Azure refused the credential.*az login"):
        state.result()
    run, history = task_run(state)
    assert run.run_count == 1 and "Retrying" not in history
    assert not (state_dir / "registry").exists()


def test_a_large_holdout_is_kept_as_a_seeded_sample(stages, evaluation, churn_dir, state_dir):
    spec = load_spec(CHURN_YAML, {"data.url": churn_dir, "evaluation.holdout_rows": 100,
                                  "model.params": stages.spec.model.params})
    version = register_model(stages.trained, stages.split, stages.data, spec, evaluation, 1500)
    holdout = LocalRegistry(str(state_dir / "registry")).holdout("churn", version.version)
    assert len(holdout) == version.manifest["trusted_holdout_rows"] == 100
    judged = load_frame(stages.split.test)
    assert set(holdout["tenure_months"].astype(str) + holdout["age"].astype(str)) <= set(
        judged["tenure_months"].astype(str) + judged["age"].astype(str))
