"""The spec's `environments` (mlops/core/spec/environments.py): shape, refusals, what a staged
environment sees, and a spec hash that does not depend on them."""

from __future__ import annotations

import pytest
import yaml

from mlops.core.errors import SpecError
from mlops.core.spec import load_spec
from mlops.core.spec.targets import TrafficStep
from tests.conftest import ROOT

STAGING = {"name": "staging", "endpoint": {"url": "http://127.0.0.1:8766"}}
WORKSPACE = {"subscription_id": "s", "resource_group": "rg", "workspace": "prod"}


def _spec(tmp_path, environments, **sections):
    raw = yaml.safe_load((ROOT / "configs" / "churn.yaml").read_text())
    raw.update(sections)
    if environments is not None:
        raw["environments"] = environments
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_spec(path)


def test_environments_leave_the_spec_hash_as_it_was(tmp_path):
    plain = _spec(tmp_path, None)
    staged = _spec(tmp_path, [{**STAGING, "hold": "2m", "approval": True}, {"name": "production"}])
    assert staged.spec_hash() == plain.spec_hash()
    assert plain.environments == [] and plain.production_name == ""
    assert staged.production_name == "production"


def test_a_staged_environment_sees_its_endpoint_with_its_hold_and_the_shared_rest(tmp_path):
    spec = _spec(tmp_path, [
        {**STAGING, "endpoint": {**STAGING["endpoint"], "traffic_steps": [50, 100]},
         "hold": "2m"},
        {"name": "qa", "endpoint": {"url": "http://127.0.0.1:8767", "traffic_steps": [50]},
         "hold": 5},
        {"name": "production"},
    ])
    staging = spec.in_environment(spec.environments[0])
    assert staging.endpoint.url == "http://127.0.0.1:8766"
    assert staging.endpoint.traffic_steps == [TrafficStep(share=50),
                                              TrafficStep(share=100, hold=120.0)]
    assert staging.registry == spec.registry and staging.spec_hash() == spec.spec_hash()
    qa = spec.in_environment(spec.environments[1])  # a last step short of 100: one is added
    assert qa.endpoint.traffic_steps == [TrafficStep(share=50), TrafficStep(share=100, hold=5)]
    assert spec.in_environment(spec.environments[2]) is spec  # production: the spec's own


def test_an_environment_on_azure_may_name_its_own_workspace(tmp_path):
    azure = {"backend": "azureml"}
    spec = _spec(tmp_path, [
        {"name": "staging", "endpoint": azure, "azureml": {**WORKSPACE, "workspace": "stage"}},
        {"name": "production"},
    ], registry={**azure, "azureml_registry": "shared"}, endpoint=azure, azureml=WORKSPACE)
    staging = spec.in_environment(spec.environments[0])
    assert staging.azureml.workspace == "stage" and spec.azureml.workspace == "prod"
    assert staging.endpoint_name != spec.endpoint_name


@pytest.mark.parametrize(("environments", "problem"), [
    ([STAGING, {**STAGING, "endpoint": None}, {"name": "production"}],
     "environments repeat names ['staging']"),
    ([{"name": "production"}], "environments name only ['production']: give at least one "
     "before production"),
    ([STAGING, {"name": "production", "endpoint": {"url": "http://127.0.0.1:9"}}],
     "environment 'production' is production (the last one): it uses the spec's 'endpoint'"),
    ([{"name": "staging"}, {"name": "production"}],
     "environment 'staging' needs an 'endpoint' (only the last environment uses the spec's)"),
    ([{"name": "staging", "endpoint": {}}, {"name": "production"}],
     "environment 'staging' needs endpoint.url"),
    ([{"name": "staging", "endpoint": {"url": "http://127.0.0.1:8765/"}}, {"name": "production"}],
     "environment 'staging': endpoint.url http://127.0.0.1:8765/ is production's endpoint"),
    ([{"name": "staging", "endpoint": {"backend": "azureml"}}, {"name": "production"}],
     "endpoint.backend 'azureml' must be the registry's backend 'local'"),
    ([{**STAGING, "azureml": WORKSPACE}, {"name": "production"}],
     "environment 'staging': 'azureml' needs endpoint.backend 'azureml'"),
    ([{**STAGING, "name": "Staging!"}, {"name": "production"}], "environments.0.name"),
])
def test_bad_environments_are_refused_by_name(tmp_path, environments, problem):
    with pytest.raises(SpecError) as info:
        _spec(tmp_path, environments,
              endpoint={"backend": "local", "url": "http://127.0.0.1:8765"})
    assert problem in str(info.value)


def test_an_azure_environment_in_its_own_workspace_needs_a_shared_azure_ml_registry(tmp_path):
    azure = {"backend": "azureml"}
    with pytest.raises(SpecError, match=r"environment 'staging' has its own workspace: the model "
                       r"registry both share must be an Azure ML registry"):
        _spec(tmp_path, [{"name": "staging", "endpoint": azure,
                          "azureml": {**WORKSPACE, "workspace": "stage"}},
                         {"name": "production"}], registry=azure, endpoint=azure, azureml=WORKSPACE)


def test_an_azure_environment_must_not_be_production_s_endpoint(tmp_path):
    azure = {"backend": "azureml"}
    with pytest.raises(SpecError, match="environment 'staging': its endpoint is production's "
                       r"\(same workspace, same name\)"):
        _spec(tmp_path, [{"name": "staging", "endpoint": azure}, {"name": "production"}],
              registry=azure, endpoint=azure, azureml=WORKSPACE)
    named = _spec(tmp_path, [{"name": "staging", "endpoint": {**azure, "name": "churn-stage"}},
                             {"name": "production"}],
                  registry=azure, endpoint=azure, azureml=WORKSPACE)
    assert named.in_environment(named.environments[0]).endpoint_name == "churn-stage"
