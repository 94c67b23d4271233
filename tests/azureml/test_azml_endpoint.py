"""The managed online endpoint client against the recording stand-in: what it creates, in
which order, what it refuses, and how Azure's failures reach the caller."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from mlops.core.errors import DeploymentError, EndpointError
from mlops.endpoint.azureml import AzureMLEndpointClient
from mlops.endpoint.payloads import frame_to_request
from mlops.registry.azureml import AzureMLRegistry
from tests.azureml.conftest import azure_spec
from tests.azureml.fake_mlclient import http_error
from tests.serving._models import FEATURES

ENDPOINT = "churn-endpoint"


def _client(fake, **endpoint) -> AzureMLEndpointClient:
    spec = azure_spec(**{f"endpoint.{k}": v for k, v in endpoint.items()})
    return AzureMLEndpointClient(fake, ENDPOINT, endpoint=spec.endpoint, target=spec.azureml)


@pytest.fixture
def versions(fake, toy, tmp_path):
    registry = AzureMLRegistry(fake, tmp_path / "cache")
    return [toy.register(registry) for _ in range(3)]


def test_first_deployment_creates_endpoint_environment_and_deployment(fake, versions):
    client = _client(fake)
    assert client.state()["traffic"] == {}
    client.put_deployment("blue", versions[0].url)
    ops = [op for op, _ in fake.writes() if op != "models.create_or_update"]
    assert ops == [
        "online_endpoints.begin_create_or_update",  # key auth, no traffic
        "environments.create_or_update",
        "online_deployments.begin_create_or_update",
    ]
    created = fake.writes()[-1][1]
    assert created["model"] == "toy:1"  # the SDK's loader drops 'azureml:' from a reference
    assert created["environment"].startswith("mlops-sklearn:")
    # deployment.yml's defaults when the spec gives none
    assert (created["instance_type"], created["instance_count"]) == ("Standard_DS3_v2", 1)
    state = client.state()
    assert state["traffic"] == {"blue": 0}
    assert state["deployments"]["blue"]["model"].endswith("toy:1")


def test_the_uploaded_code_folder_is_score_py_and_serving_only(fake, versions):
    _client(fake).put_deployment("blue", versions[0].url)
    code = fake.service.deployments[(ENDPOINT, "blue")]["code"]
    top = sorted(p.name for p in code.iterdir())
    assert top == ["score.py", "serving"]
    shipped = sorted(p.relative_to(code).as_posix() for p in code.rglob("*.py"))
    repo = Path(__file__).resolve().parents[2]
    expected = sorted(["score.py", *(p.relative_to(repo).as_posix()
                                     for p in (repo / "serving").rglob("*.py"))])
    assert shipped == expected
    assert not list(code.rglob("__pycache__"))


def test_spec_sets_instance_type_and_count(fake, versions):
    _client(fake, instance_type="Standard_F4s_v2", instance_count=3).put_deployment(
        "green", versions[0].url)
    created = fake.writes()[-1][1]
    assert (created["instance_type"], created["instance_count"]) == ("Standard_F4s_v2", 3)


def test_smoke_call_reaches_the_named_deployment_through_invoke(fake, versions, toy):
    client = _client(fake)
    client.put_deployment("blue", versions[0].url)
    client.put_deployment("green", versions[1].url)
    rows = toy.frame[FEATURES].head(7)
    answer = client.score(frame_to_request(rows), deployment="green")
    assert answer["model_version"] == "2" and len(answer["predictions"]) == 7
    assert answer["predictions"] == [int(p) for p in toy.pipeline.predict(rows)]
    assert fake.writes()[-1] == ("online_endpoints.invoke",
                                 {"name": ENDPOINT, "deployment": "green"})
    with pytest.raises(EndpointError, match="purple does not exist"):
        client.score(frame_to_request(rows), deployment="purple")


def test_an_idle_slot_is_deleted_before_it_is_reused_and_a_live_one_never(fake, versions):
    client = _client(fake)
    client.put_deployment("blue", versions[0].url)
    client.set_traffic({"blue": 100})
    client.put_deployment("green", versions[1].url)
    client.set_traffic({"green": 100, "blue": 0})
    before = len(fake.writes())
    client.put_deployment("blue", versions[2].url)  # the release before last leaves now
    assert fake.writes()[before:] == [
        ("online_deployments.begin_delete", {"name": "blue", "endpoint": ENDPOINT}),
        ("online_deployments.begin_create_or_update", {
            "name": "blue", "endpoint": ENDPOINT, "model": "toy:3",
            "environment": fake.writes()[before + 1][1]["environment"],
            "instance_type": "Standard_DS3_v2", "instance_count": 1}),
    ]
    with pytest.raises(DeploymentError, match="carries 100% of the traffic"):
        client.put_deployment("green", versions[0].url)
    with pytest.raises(DeploymentError, match="carries 100% of the traffic"):
        client.delete_deployment("green")
    assert fake.traffic(ENDPOINT) == {"green": 100}


def test_traffic_must_sum_to_100_and_name_real_deployments(fake, versions):
    client = _client(fake)
    client.put_deployment("blue", versions[0].url)
    calls = len(fake.calls)
    with pytest.raises(DeploymentError, match="does not sum to 100"):
        client.set_traffic({"blue": 60})
    assert len(fake.calls) == calls  # refused before anything was sent
    with pytest.raises(DeploymentError, match=r"HTTP 400.*unknown \['green'\]"):
        client.set_traffic({"green": 100})
    assert fake.traffic(ENDPOINT) == {}
    assert client.set_traffic({"blue": 100}) == {"blue": 100}


def test_a_deployment_that_fails_to_provision_says_where_its_logs_are(fake, versions):
    client = _client(fake)
    fake.fail("online_deployments.begin_create_or_update",
              http_error(400, "ResourceNotReady: container crashed"), at_result=True)
    with pytest.raises(DeploymentError, match=r"container crashed.*get-logs -n blue"):
        client.put_deployment("blue", versions[0].url)
    assert client.state()["deployments"]["blue"]["state"] == "Failed"
    client.put_deployment("blue", versions[1].url)  # the failed one is cleared first
    assert client.state()["deployments"]["blue"]["model"].endswith("toy:2")


def test_a_refused_credential_is_an_endpoint_error_with_the_way_out(fake):
    from azure.core.exceptions import ClientAuthenticationError

    fake.fail("online_endpoints.get", ClientAuthenticationError("DefaultAzureCredential failed"))
    with pytest.raises(EndpointError, match="az login"):
        _client(fake).state()


def test_score_without_a_deployment_is_not_routed_by_an_earlier_call(monkeypatch, tmp_path):
    """azure-ai-ml keeps invoke's headers in a class-level dict; our client clears the
    deployment header before a call that names none. Runs the SDK's own invoke."""
    from azure.ai.ml import MLClient
    from azure.ai.ml.constants._endpoint import EndpointInvokeFields
    from azure.ai.ml.entities import EndpointAuthKeys

    monkeypatch.setattr(EndpointInvokeFields, "DEFAULT_HEADER",
                        {"Content-Type": "application/json"})
    ml_client = MLClient(object(), "sub", "rg", "ws")
    ops = ml_client.online_endpoints
    sent: list[dict[str, str]] = []
    endpoint = SimpleNamespace(properties=SimpleNamespace(auth_mode="key",
                                                          scoring_uri="https://x/score"))
    monkeypatch.setattr(ops._online_operation, "get", lambda **_: endpoint)
    monkeypatch.setattr(ops, "_validate_deployment_name", lambda *_: None)
    monkeypatch.setattr(ops, "_get_online_credentials",
                        lambda **_: EndpointAuthKeys(primary_key="k1", secondary_key="k2"))

    def post(url, json=None, headers=None):
        sent.append(dict(headers))
        return SimpleNamespace(status_code=200, text=lambda: '{"predictions": [1]}')

    monkeypatch.setattr(ops._requests_pipeline, "post", post)
    spec = azure_spec()
    client = AzureMLEndpointClient(ml_client, ENDPOINT, endpoint=spec.endpoint,
                                   target=spec.azureml)
    client.score({"input_data": []}, deployment="green")
    request = tmp_path / "request.json"
    request.write_text('{"input_data": []}')
    ops.invoke(ENDPOINT, request_file=str(request))  # the SDK on its own
    client.score({"input_data": []})
    header = EndpointInvokeFields.MODEL_DEPLOYMENT
    assert sent[0][header] == "green"
    assert sent[1].get(header) == "green", "the SDK no longer leaks it: drop the workaround"
    assert header not in sent[2]
