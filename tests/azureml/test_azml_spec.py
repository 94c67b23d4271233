"""The spec's Azure ML fields: what each backend needs, checked when the spec is read."""

from __future__ import annotations

import pytest

from mlops.core.errors import SpecError
from mlops.core.spec import load_spec
from tests.azureml.conftest import AZURE, CHURN_YAML, azure_spec


def test_azure_fields_do_not_change_the_spec_hash():
    local = load_spec(CHURN_YAML)
    on_azure = azure_spec(**{"training.backend": "azureml", "training.compute": "cpu",
                             "endpoint.instance_count": 3, "registry.azureml_registry": "shared"})
    assert on_azure.spec_hash() == local.spec_hash()  # where it runs does not change the model
    assert on_azure.azureml.workspace == "ws-mlops"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"registry.backend": "azureml", "endpoint.backend": "azureml"},
         "needs an 'azureml' section"),
        ({**AZURE, "endpoint.backend": "local"}, "must both be 'azureml' or neither"),
        ({"registry.azureml_registry": "shared"}, "needs registry.backend 'azureml'"),
        ({**AZURE, "training.backend": "azureml"}, "needs training.compute"),
        ({**AZURE, "endpoint.name": "9-lives"}, "not valid on Azure ML"),
        ({**AZURE, "endpoint.name": "a-rather-long-model-name-for-azure"},
         "'a-rather-long-model-name-for-azure' is not valid"),
        ({**AZURE, "endpoint.instance_count": 0}, "instance_count"),
        ({**AZURE, "azureml": {"subscription_id": "s", "workspace": "w"}}, "resource_group"),
    ],
)
def test_incomplete_azure_targets_are_spec_errors(overrides, message):
    with pytest.raises(SpecError, match=message):
        load_spec(CHURN_YAML, overrides)


def test_the_default_endpoint_name_is_unique_per_workspace():
    """Finding 3: '<name>-endpoint' is likely taken in the region by someone else."""
    from mlops.core.spec.targets import AZURE_ENDPOINT_NAME

    def default(workspace: str, name: str = "churn"):
        where = {**AZURE["azureml"], "workspace": workspace}
        return load_spec(CHURN_YAML, {**AZURE, "azureml": where, "endpoint.name": None,
                                      "name": name}).endpoint_name

    assert default("ws-a") == default("ws-a") != default("ws-b")
    assert default("ws-a").startswith("churn-") and default("ws-a") != "churn-endpoint"
    long = default("ws-a", "a-rather-long-model-name-for-azure")
    digit = default("ws-a", "9-lives")
    assert all(AZURE_ENDPOINT_NAME.match(n) for n in (long, digit)), (long, digit)
    assert len(long) == 32 and long.startswith("a-rather-long-model-nam-")
    assert load_spec(CHURN_YAML).endpoint_name == "churn-endpoint"  # the local endpoint's
    assert azure_spec().endpoint_name == "churn-endpoint"  # a name given is kept


def test_training_on_a_cluster_works_with_the_local_registry_and_endpoint():
    spec = load_spec(CHURN_YAML, {
        "azureml": AZURE["azureml"], "training.backend": "azureml", "training.compute": "cpu"})
    assert (spec.registry.backend, spec.endpoint.backend) == ("local", "local")


def test_overrides_are_copied_not_shared():
    workspace = {"subscription_id": "s", "resource_group": "r", "workspace": "w"}
    overrides = {**AZURE, "azureml": workspace, "azureml.environment": "azureml:e:1"}
    assert load_spec(CHURN_YAML, overrides).azureml.environment == "azureml:e:1"
    assert workspace == {"subscription_id": "s", "resource_group": "r", "workspace": "w"}
