"""The training flow end to end, on a real Prefect test server and a real local endpoint.

The outcomes: first model promoted, better model promoted, worse model refused; the cache on an
unchanged re-run; garbage labels refused against a serving champion; and that failures leave the
registry and the traffic untouched.
"""

from __future__ import annotations

import time

import pytest
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.sorting import TaskRunSort

from flows.training import training
from mlops.core.errors import (
    DataValidationError,
    DeploymentError,
    LabelDriftError,
    ModelQualityError,
)
from mlops.endpoint.local import LocalEndpointClient
from mlops.endpoint.payloads import frame_to_request
from mlops.registry.local import LocalRegistry
from tests.conftest import corrupt_labels, spec_endpoint, write_spec
from tools.datasets import make_churn
from tools.status import status

pytestmark = [pytest.mark.slow, pytest.mark.service, pytest.mark.usefixtures("prefect_server")]

WEAK = {"model.params": {"max_iter": 3, "max_depth": 1, "learning_rate": 0.05}}
STRONG = {"model.params": {"max_iter": 120, "learning_rate": 0.08}}


def _task_states(flow_state) -> dict[str, str]:
    """Each task's final state name. The server records task-run states from events, after
    the flow has returned, so this waits (up to 30 s) until every task run has a final state."""
    flow_run_id = flow_state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        for _ in range(150):
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                sort=TaskRunSort.EXPECTED_START_TIME_ASC, limit=200,
            )
            if runs and all(run.state is not None and run.state.is_final() for run in runs):
                break
            time.sleep(0.2)
    return {run.task_key.rsplit("-", 1)[0]: run.state.name if run.state else "(no state yet)"
            for run in runs}


def _endpoint(stack) -> LocalEndpointClient:
    return LocalEndpointClient.from_settings(stack)


def _serving(stack) -> tuple:
    """What the endpoint serves: each deployment's model version, and the traffic table."""
    state = _endpoint(stack).state()
    versions = {name: d.get("model_version") for name, d in state["deployments"].items()}
    return versions, state["traffic"]


def _run(spec_path, data, **kwargs):
    return training(spec_path=spec_path, data_url=data, return_state=True, **kwargs)


def test_three_outcomes_and_the_cache(use_stack, churn_data, tmp_path):
    weak = write_spec(tmp_path, "weak", {**WEAK, "evaluation.minimum": 0.5})
    strong = write_spec(tmp_path, "strong", {**STRONG, "evaluation.minimum": 0.5})
    registry = LocalRegistry(use_stack.registry_location)

    first = _run(weak, churn_data)
    assert first.result()["outcome"] == "promoted"
    assert registry.alias("churn") == 1
    state = _endpoint(use_stack).state()
    assert state["traffic"] == {"blue": 100}

    better = _run(strong, churn_data)
    assert better.result() == {"outcome": "promoted", "version": 2,
                               "traffic": {"green": 100, "blue": 0}}
    assert registry.alias("churn") == 2
    rows = make_churn(5, seed=99)
    answer = _endpoint(use_stack).score(frame_to_request(rows.drop(columns=["churned"])))
    assert str(answer["model_version"]) == "2" and len(answer["predictions"]) == 5

    again = _run(strong, churn_data)
    assert again.result() == {"outcome": "retained", "champion": 2}
    states = _task_states(again)
    for stage in ("load_data", "validate_data", "build_features", "train_model"):
        assert states[stage] == "Cached", states
    assert registry.versions("churn") == [1, 2]

    worse = _run(weak, churn_data)
    assert worse.result()["outcome"] == "retained"
    assert registry.alias("churn") == 2
    assert registry.versions("churn") == [1, 2]
    assert _endpoint(use_stack).state()["traffic"] == {"green": 100, "blue": 0}
    history = registry.releases("churn")  # a retained champion is an entry too
    assert [(r.kind, r.version, r.champion_before, r.champion_after) for r in history] == [
        ("promotion", 1, None, 1), ("promotion", 2, 1, 2), ("retained", None, 2, 2),
        ("retained", None, 2, 2)]
    assert history[2].reason.startswith("the candidate is champion v2 itself")
    retained = history[3]
    assert "roc_auc 0." in retained.reason and "must exceed the margin 0.0020" in retained.reason
    assert retained.detail.startswith("candidate vs champion: roc_auc 0.")
    assert retained.detail.endswith("; the run was started for: not given")
    assert retained.traffic_after == {"green": 100, "blue": 0}
    assert retained.flow_run_id == str(worse.state_details.flow_run_id)
    newest = status(use_stack, spec_path=weak).splitlines()[-len(history)]  # newest first
    assert newest.split(" | ")[1:5] == ["retained", "-", "v2 -> v2", "blue 0%, green 100%"]

    forced = _run(strong, churn_data, force=True)
    assert forced.result()["outcome"] == "retained"
    assert _task_states(forced)["train_model"] == "Completed"


def test_invalid_data_stops_before_anything_is_written(use_stack, churn_data, tmp_path):
    spec = write_spec(tmp_path, "strict", {"columns": [
        {"name": "customer_id", "dtype": "string", "role": "id"},
        {"name": "signup_date", "dtype": "datetime", "role": "timestamp"},
        {"name": "tenure_months", "dtype": "int", "rules": {"min": 0, "max": 3}},
        *[c for c in _churn_columns() if c["name"] not in {
            "customer_id", "signup_date", "tenure_months"}],
    ]})
    registry = LocalRegistry(use_stack.registry_location)
    before = (registry.versions("churn"), registry.alias("churn"), _serving(use_stack))
    state = _run(spec, churn_data)
    assert state.is_failed()
    with pytest.raises(DataValidationError, match="tenure_months"):
        state.result()
    after = (registry.versions("churn"), registry.alias("churn"), _serving(use_stack))
    assert after == before


def test_failed_smoke_test_leaves_traffic_and_champion(use_stack, churn_data, tmp_path,
                                                      monkeypatch):
    import tasks.deploy

    spec = write_spec(tmp_path, "fresh", {**STRONG, "name": "churn-smoke",
                                          "evaluation.minimum": 0.5})
    monkeypatch.setattr(tasks.deploy, "_same_predictions", lambda served, offline: False)
    registry = LocalRegistry(use_stack.registry_location)
    serving = {k: v for k, v in spec_endpoint(spec, use_stack).state()["traffic"].items() if v}
    state = _run(spec, churn_data)
    assert state.is_failed()
    with pytest.raises(DeploymentError, match="predictions differ"):
        state.result()
    assert registry.alias("churn-smoke") is None
    after = spec_endpoint(spec, use_stack).state()
    assert {k: v for k, v in after["traffic"].items() if v} == serving
    assert all(d.get("model_name") != "churn-smoke" for d in after["deployments"].values())


def _garbage(churn_data: str, how: str, folder) -> str:
    """The flow's data with its labels corrupted, as a folder of one Parquet file."""
    import pandas as pd

    out = folder / how
    out.mkdir()
    corrupt_labels(pd.read_parquet(churn_data), "churned", how).to_parquet(
        out / "part-00000.parquet", index=False)
    return str(out)


def test_garbage_labels_never_ship(use_stack, churn_data, tmp_path):
    spec = write_spec(tmp_path, "labels", {**STRONG, "name": "churn-labels"})
    registry = LocalRegistry(use_stack.registry_location)
    assert _run(spec, churn_data).result()["outcome"] == "promoted"
    champion = registry.alias("churn-labels")

    def unchanged():
        name = "churn-labels"
        return registry.versions(name), registry.alias(name), _serving(use_stack)

    before = unchanged()
    inverted = _run(spec, _garbage(churn_data, "inverted", tmp_path))
    with pytest.raises(LabelDriftError, match=r"label drift, nothing trained: target 'churned'"):
        inverted.result()
    assert "train_model" not in _task_states(inverted)
    assert unchanged() == before

    expected = _run(spec, str(tmp_path / "inverted"), expect_label_shift=True)
    assert expected.result() == {"outcome": "retained", "champion": champion}  # trusted holdout
    assert unchanged() == before

    for how in ("shuffled", "flipped"):
        state = _run(spec, _garbage(churn_data, how, tmp_path), expect_label_shift=True)
        with pytest.raises(ModelQualityError) as info:
            state.result()
        message = str(info.value)
        assert message.startswith(f"candidate (champion v{champion} stays) of 'churn-labels'")
        assert "it must be at least 0.7000" in message and "trusted holdout" in message
        assert _task_states(state)["train_model"] == "Completed"
        assert unchanged() == before, how


def _churn_columns():
    import yaml

    from tests.conftest import ROOT

    return yaml.safe_load((ROOT / "configs" / "churn.yaml").read_text())["columns"]


def test_the_label_shift_flag_is_a_checkbox_of_the_run_form():
    from prefect.utilities.callables import parameter_schema

    field = parameter_schema(training.fn).model_dump()["properties"]["expect_label_shift"]
    assert (field["type"], field["default"]) == ("boolean", False)
    assert field["description"].startswith("The target's distribution is meant to have moved")
