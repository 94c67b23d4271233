"""The managed online endpoint client, the real SDK over HTTP to the REST stand-in: what it
creates, in which order, what the service refuses, and how Azure's failures reach the caller."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.ai.ml import MLClient
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError
from azure.storage.blob import ContainerClient

from mlops.core.errors import DeploymentError, EndpointError, ProvisioningError
from mlops.endpoint.azureml import AzureMLEndpointClient
from mlops.registry.azureml import AzureMLRegistry
from tests.azureml.conftest import azure_spec
from tests.azureml.standin import RG, SUB, WS

pytestmark = pytest.mark.azurite

ENDPOINT = "churn-endpoint"


def endpoint_client(ml_client, name: str = ENDPOINT, **endpoint) -> AzureMLEndpointClient:
    spec = azure_spec(**{f"endpoint.{k}": v for k, v in endpoint.items()})
    client = AzureMLEndpointClient(ml_client, name, endpoint=spec.endpoint, target=spec.azureml)
    client.poll_s = 0
    return client


@pytest.fixture
def versions(ml_client, toy, tmp_path):
    registry = AzureMLRegistry(ml_client, tmp_path / "cache")
    return [toy.register(registry) for _ in range(3)]


def writes(workspace, since: int = 0) -> list[str]:
    """The writes since `since` as 'METHOD kind[/name]', asset versions without their digest."""
    words = []
    for method, path in workspace.writes()[since:]:
        parts = path.strip("/").split("/")
        if parts[0] in {"environments", "codes"}:
            words.append(f"{method} {parts[0]}")
        else:
            words.append(f"{method} {'/'.join(parts)}")
    return words


def _collections(deployment: str) -> list[str]:
    """The data assets the SDK registers for deployment.yml's data collector."""
    return [f"PUT data/{ENDPOINT}-{deployment}-model_{what}/versions/1"
            for what in ("inputs", "outputs")]


def test_first_deployment_creates_endpoint_environment_code_and_deployment(
    ml_client, workspace, versions
):
    client = endpoint_client(ml_client)
    assert client.state()["traffic"] == {}
    since = len(workspace.writes())
    client.put_deployment("blue", versions[0].url)
    assert writes(workspace, since) == [
        f"PUT onlineEndpoints/{ENDPOINT}", "PUT environments", *_collections("blue"),
        "POST codes", "PUT codes", f"PUT onlineEndpoints/{ENDPOINT}/deployments/blue",
    ]
    sent = workspace.deployments[(ENDPOINT, "blue")]
    assert sent["properties"]["model"].endswith(f"workspaces/{WS}/models/toy/versions/1")
    assert "/environments/mlops-sklearn/versions/" in sent["properties"]["environmentId"]
    # deployment.yml's defaults when the spec gives none
    assert (sent["properties"]["instanceType"], sent["sku"]["capacity"]) == (
        "Standard_DS3_v2", 1)
    assert sent["properties"]["provisioningState"] == "Succeeded"
    state = client.state()
    assert state["traffic"] == {"blue": 0}
    assert state["deployments"]["blue"]["state"] == "Succeeded"
    polls = [p for m, p in workspace.requests if "mfeOperations" in p]
    assert polls, "the SDK polled the long-running operations"


def test_the_uploaded_code_folder_is_score_py_and_serving_only(
    ml_client, workspace, azurite, versions
):
    endpoint_client(ml_client).put_deployment("blue", versions[0].url)
    code_id = workspace.deployments[(ENDPOINT, "blue")]["properties"]["codeConfiguration"][
        "codeId"]
    name, version = code_id.split("/codes/")[1].split("/versions/")
    uri = workspace.codes[(name, version)]["properties"]["codeUri"]
    container, _, prefix = uri.split(".blob.core.windows.net/")[1].partition("/")
    with ContainerClient.from_connection_string(azurite.connection_string, container) as blobs:
        shipped = sorted(b.name[len(prefix) + 1:] for b in
                         blobs.list_blobs(name_starts_with=prefix + "/"))
    repo = Path(__file__).resolve().parents[2]
    expected = sorted(["score.py", *(p.relative_to(repo).as_posix()
                                     for p in (repo / "serving").rglob("*.py"))])
    assert shipped == expected


def test_spec_sets_instance_type_and_count(ml_client, workspace, versions):
    endpoint_client(ml_client, instance_type="Standard_F4s_v2", instance_count=3).put_deployment(
        "green", versions[0].url)
    sent = workspace.deployments[(ENDPOINT, "green")]
    assert (sent["properties"]["instanceType"], sent["sku"]["capacity"]) == (
        "Standard_F4s_v2", 3)


def test_an_idle_slot_is_deleted_before_it_is_reused_and_a_live_one_never(
    ml_client, workspace, versions
):
    client = endpoint_client(ml_client)
    client.put_deployment("blue", versions[0].url)
    client.set_traffic({"blue": 100})
    client.put_deployment("green", versions[1].url)
    client.set_traffic({"green": 100, "blue": 0})
    since = len(workspace.writes())
    client.put_deployment("blue", versions[2].url)  # the release before last leaves now
    assert writes(workspace, since) == [
        f"DELETE onlineEndpoints/{ENDPOINT}/deployments/blue", *_collections("blue"),
        "POST codes", "PUT codes", f"PUT onlineEndpoints/{ENDPOINT}/deployments/blue",
    ]
    with pytest.raises(DeploymentError, match="carries 100% of the traffic"):
        client.put_deployment("green", versions[0].url)
    with pytest.raises(DeploymentError, match="carries 100% of the traffic"):
        client.delete_deployment("green")
    assert workspace.traffic(ENDPOINT) == {"green": 100}


def test_traffic_must_sum_to_100_and_name_real_deployments(ml_client, workspace, versions):
    client = endpoint_client(ml_client)
    client.put_deployment("blue", versions[0].url)
    sent = len(workspace.requests)
    with pytest.raises(DeploymentError, match="does not sum to 100"):
        client.set_traffic({"blue": 60})
    assert len(workspace.requests) == sent  # refused before anything was sent
    with pytest.raises(DeploymentError, match="HTTP 400.*Deployment green does not exist"):
        client.set_traffic({"green": 100})
    assert workspace.traffic(ENDPOINT) == {}
    assert client.set_traffic({"blue": 100}) == {"blue": 100}


def test_a_deployment_that_fails_to_provision_carries_its_container_logs(
    ml_client, workspace, versions
):
    """Finding 5: the logs of both containers come with the error, not a hint to fetch them."""
    client = endpoint_client(ml_client)
    workspace.fail_provisioning(ENDPOINT, "blue", "ResourceNotReady",
                                "User container has crashed or terminated", logs={
        "StorageInitializer": "Downloading model azureml:toy:1\nmodel downloaded",
        "InferenceServer": "Traceback (most recent call last):\nModuleNotFoundError: serving",
    })
    with pytest.raises(ProvisioningError, match=r"(?s)crashed.*storage-initializer.*model "
                                                  r"downloaded.*ModuleNotFoundError") as failed:
        client.put_deployment("blue", versions[0].url)
    assert failed.value.logs["inference-server"].endswith("ModuleNotFoundError: serving")
    assert "model downloaded" in failed.value.logs["storage-initializer"]
    assert client.state()["deployments"]["blue"]["state"] == "Failed"
    client.put_deployment("blue", versions[1].url)  # the failed one is cleared first
    assert client.state()["deployments"]["blue"]["model"].endswith("/models/toy/versions/2")


def test_a_retried_deploy_resumes_the_operation_in_flight(ml_client, workspace, versions):
    """Finding 7: polling lost its connection while Azure ML provisioned; the retry waits for
    that deployment instead of deleting it and creating it again."""
    client = endpoint_client(ml_client)
    client.put_deployment("green", versions[0].url)
    workspace.polls = 3
    workspace.before("GET", "mfeOperationsStatus", lambda: setattr(
        workspace.adapter, "connection_failures", 10))  # more than the SDK retries
    with pytest.raises(ServiceRequestError):
        client.put_deployment("blue", versions[1].url)
    workspace.adapter.connection_failures = 0
    assert workspace.deployments[(ENDPOINT, "blue")]["properties"]["provisioningState"] == (
        "Creating")
    since = len(workspace.writes())
    assert client.put_deployment("blue", versions[1].url)["state"] == "Succeeded"
    assert writes(workspace, since) == []  # no delete, no second create
    assert client.state()["deployments"]["blue"]["state"] == "Succeeded"


def test_a_name_taken_in_the_region_is_a_clear_error(ml_client, workspace, versions):
    """Finding 3: endpoint names are unique per region across customers."""
    workspace.taken_in_region.add(ENDPOINT)
    with pytest.raises(EndpointError, match="'churn-endpoint' is taken in the workspace's "
                                            "Azure region.*set endpoint.name"):
        endpoint_client(ml_client).put_deployment("blue", versions[0].url)
    assert ENDPOINT not in workspace.endpoints


def test_live_traffic_takes_mirror_traffic_off_the_deployment_it_moves_to(
    ml_client, workspace, versions
):
    """Finding 9: Azure ML refuses live and mirror traffic on one deployment."""
    client = endpoint_client(ml_client)
    client.put_deployment("blue", versions[0].url)
    client.put_deployment("green", versions[1].url)
    client.set_traffic({"blue": 100})
    endpoint = ml_client.online_endpoints.get(ENDPOINT)
    endpoint.mirror_traffic = {"green": 10}  # a shadow phase set by hand
    ml_client.online_endpoints.begin_create_or_update(endpoint).result()
    assert workspace.mirror(ENDPOINT) == {"green": 10}
    client.set_traffic({"blue": 50, "green": 50})
    assert workspace.traffic(ENDPOINT) == {"blue": 50, "green": 50}
    assert workspace.mirror(ENDPOINT) == {}
    endpoint = ml_client.online_endpoints.get(ENDPOINT)
    endpoint.mirror_traffic = {"blue": 10}  # not live: stays when traffic moves elsewhere
    endpoint.traffic = {"green": 100, "blue": 0}
    ml_client.online_endpoints.begin_create_or_update(endpoint).result()
    client.set_traffic({"green": 100})
    assert workspace.mirror(ENDPOINT) == {"blue": 10}


def test_mirror_traffic_goes_through_the_sdk_and_azure_ml_refusals_reach_the_caller(
    ml_client, workspace, versions
):
    client = endpoint_client(ml_client)
    for slot, version in zip(("blue", "green", "red"), versions, strict=True):
        client.put_deployment(slot, version.url)
    client.set_traffic({"blue": 100})
    assert client.set_mirror_traffic({"green": 20}) == {"green": 20}
    assert workspace.mirror(ENDPOINT) == {"green": 20}
    assert client.state()["mirror_traffic"] == {"green": 20}
    for table, refusal in (({"green": 51}, "cannot exceed 50%"),
                           ({"blue": 10}, "cannot receive both live and mirror"),
                           ({"green": 10, "red": 10}, "one deployment only"),
                           ({"purple": 10}, "purple does not exist")):
        with pytest.raises(DeploymentError, match=refusal):
            client.set_mirror_traffic(table)
        assert workspace.mirror(ENDPOINT) == {"green": 20}
    assert client.set_mirror_traffic({}) == {}
    assert workspace.mirror(ENDPOINT) == {} and client.state()["mirror_traffic"] == {}
    assert workspace.traffic(ENDPOINT) == {"blue": 100}


def test_a_refused_credential_is_an_endpoint_error_with_the_way_out(workspace):
    class Refused:
        def get_token(self, *scopes, **_):
            raise ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token")

    ml_client = MLClient(Refused(), SUB, RG, WS, transport=workspace.transport())
    with pytest.raises(EndpointError, match="az login"):
        endpoint_client(ml_client).state()
    assert workspace.requests == []  # nothing reached the service without a token
