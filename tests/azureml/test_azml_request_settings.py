"""How a deployment takes requests and collects its inputs: deployment.yml's request settings,
worker count and data collector, the spec's overrides, and the rule tying workers to admitted
requests, read from the REST body the service receives."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops.azureml.entities import deployment_entity
from mlops.core.errors import SpecError
from tests.azureml.conftest import azure_spec


def _body(**endpoint) -> dict:
    spec = azure_spec(**{f"endpoint.{k}": v for k, v in endpoint.items()})
    deployment = deployment_entity(
        slot="blue", endpoint_name="churn-endpoint", model="azureml:churn:4",
        environment="azureml:mlops-sklearn:1", code_dir=Path("."), endpoint=spec.endpoint,
    )
    return deployment._to_rest_object(location="westeurope").as_dict()["properties"]


def test_deployment_yml_sizes_requests_and_collects_inputs():
    body = _body()
    assert body["requestSettings"] == {"maxConcurrentRequestsPerInstance": 8,
                                       "requestTimeout": "PT5S"}
    assert body["environmentVariables"] == {"MLOPS_ENDPOINT_AZUREML_COLLECT": "true",
                                            "WORKER_COUNT": "4"}
    assert body["dataCollector"]["collections"] == {
        "model_inputs": {"dataCollectionMode": "enabled"},
        "model_outputs": {"dataCollectionMode": "enabled"},
    }
    assert body["dataCollector"]["rollingRate"] == "hour"  # the drift check's hour folders


def test_the_spec_overrides_the_request_settings():
    body = _body(worker_count=2, max_concurrent_requests_per_instance=2,
                 request_timeout_ms=12_000)
    assert body["requestSettings"] == {"maxConcurrentRequestsPerInstance": 2,
                                       "requestTimeout": "PT12S"}
    assert body["environmentVariables"]["WORKER_COUNT"] == "2"


@pytest.mark.parametrize("endpoint", [
    {"worker_count": 3, "max_concurrent_requests_per_instance": 2},
    {"worker_count": 9},  # against deployment.yml's 8 admitted requests
    {"max_concurrent_requests_per_instance": 3},  # against deployment.yml's 4 workers
])
def test_fewer_admitted_requests_than_workers_is_refused(endpoint):
    with pytest.raises(SpecError, match=r"below endpoint.worker_count \d+: 1 worker"):
        _body(**endpoint)


@pytest.mark.parametrize(("field", "value"), [
    ("worker_count", 0), ("worker_count", 65),
    ("max_concurrent_requests_per_instance", 0), ("max_concurrent_requests_per_instance", 1001),
    ("request_timeout_ms", 999), ("request_timeout_ms", 180_001),
])
def test_request_settings_out_of_azures_range_fail_the_spec(field, value):
    with pytest.raises(SpecError, match=field):
        azure_spec(**{f"endpoint.{field}": value})


@pytest.mark.parametrize(("field", "value"), [
    ("worker_count", 64), ("max_concurrent_requests_per_instance", 1000),
    ("request_timeout_ms", 1000), ("request_timeout_ms", 180_000),
])
def test_request_settings_at_azures_limits_are_accepted(field, value):
    assert getattr(azure_spec(**{f"endpoint.{field}": value}).endpoint, field) == value
