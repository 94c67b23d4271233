"""The managed online endpoint, behind the same calls as the local endpoint client
(``mlops.endpoint.local.LocalEndpointClient``).

The deploy tasks run the protocol of DESIGN.md with these calls, unchanged:

- ``state()``: the traffic table (every deployment, 0 for those without traffic);
- ``put_deployment(slot, model)``: creates the endpoint if it is missing (key auth), deletes the
  slot's previous deployment (the release before last, or a failed candidate: never one with
  traffic) and creates the new one from ``deployments/azureml/deployment.yml`` with the model,
  the staged code folder and the pinned environment; returns once Azure ML has provisioned it;
- ``score(payload, deployment=slot)``: the smoke test, a plain HTTP POST to the endpoint's
  scoring URI with its key and the ``azureml-model-deployment`` header, which bypasses the
  traffic table (not the SDK's ``invoke``, which fails with an ``AttributeError`` on our error
  bodies and keeps the deployment header for later calls);
- ``set_traffic(table)``: moves traffic (and rolls it back), taking mirror traffic off a
  deployment that gets live traffic (Azure ML refuses both on one deployment);
- ``set_mirror_traffic(table)``: the endpoint's ``mirror_traffic`` (a release's shadow phase);
- ``delete_deployment(slot)``: removes a failed candidate;
- ``metrics()``: each deployment's minutes in Azure Monitor (``mlops.endpoint.azure_monitor``).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from azure.ai.ml import MLClient
from azure.ai.ml.entities import ManagedOnlineEndpoint
from azure.core.exceptions import ResourceNotFoundError

from mlops.azureml.client import azure_errors, ensure_environment, wait, workspace_client
from mlops.azureml.entities import deployment_entity, endpoint_entity
from mlops.azureml.shipping import stage_scoring_code
from mlops.core.errors import DeploymentError, EndpointError, ProvisioningError, shorten
from mlops.core.settings import Settings
from mlops.core.spec import PipelineSpec
from mlops.core.spec.targets import AzureMLSpec, EndpointSpec
from mlops.endpoint import azure_monitor
from mlops.endpoint.metrics import DeploymentStats

logger = logging.getLogger(__name__)


def _text(value: Any) -> str | None:
    """An SDK enum (provisioning states) as the plain string Azure sends."""
    return None if value is None else str(getattr(value, "value", value))


DEPLOYMENT_HEADER = "azureml-model-deployment"
IN_FLIGHT = {"Creating", "Updating"}
# The containers whose logs explain a deployment that did not provision.
LOG_CONTAINERS = ("storage-initializer", "inference-server")
LOG_LINES = 100
NAME_TAKEN = "unique within a region"


class AzureMLEndpointClient:
    """Deployments, traffic and scoring of one managed online endpoint.

    Args:
        ml_client: a client of the endpoint's workspace.
        endpoint_name: the endpoint (created on the first deployment if missing).
        endpoint: the spec's endpoint section (instance type and count, time limit).
        target: the spec's workspace section (which environment to run).
    """

    metrics_delay_s = azure_monitor.DELAY_S  # Azure Monitor publishes a minute late

    def __init__(
        self, ml_client: MLClient, endpoint_name: str, *, endpoint: EndpointSpec,
        target: AzureMLSpec,
    ) -> None:
        self.ml_client = ml_client
        self.endpoint_name = endpoint_name
        self.spec = endpoint
        self.target = target
        self.timeout_s = endpoint.deploy_timeout_minutes * 60.0
        self.poll_s = 10.0  # between reads of a deployment another attempt started
        self._monitor: azure_monitor.EndpointMonitor | None = None

    @classmethod
    def from_spec(cls, spec: PipelineSpec, settings: Settings) -> AzureMLEndpointClient:
        return cls(
            workspace_client(spec.azureml), spec.endpoint_name, endpoint=spec.endpoint,
            target=spec.azureml,
        )

    def _endpoint(self) -> ManagedOnlineEndpoint | None:
        with azure_errors(EndpointError, f"reading endpoint '{self.endpoint_name}'"):
            try:
                return self.ml_client.online_endpoints.get(name=self.endpoint_name)
            except ResourceNotFoundError:
                return None

    def _ensure_endpoint(self) -> None:
        if self._endpoint() is not None:
            return
        logger.info("Creating endpoint %s (key auth)", self.endpoint_name)
        doing = f"creating endpoint '{self.endpoint_name}'"
        try:
            with azure_errors(EndpointError, doing):
                poller = self.ml_client.online_endpoints.begin_create_or_update(
                    endpoint_entity(self.endpoint_name)
                )
        except EndpointError as exc:
            if NAME_TAKEN in str(exc):
                raise EndpointError(
                    f"endpoint name '{self.endpoint_name}' is taken in the workspace's Azure "
                    "region (endpoint names are unique per region, across every customer); "
                    "set endpoint.name in the spec to another name, or leave it out for one "
                    "derived from the workspace"
                ) from exc
            raise
        wait(poller, self.timeout_s, EndpointError, doing)

    def state(self) -> dict[str, Any]:
        """Traffic table and deployments (model, provisioning state); empty if no endpoint."""
        endpoint = self._endpoint()
        if endpoint is None:
            return {"endpoint": self.endpoint_name, "traffic": {}, "deployments": {}}
        with azure_errors(EndpointError, f"listing deployments of '{self.endpoint_name}'"):
            deployments = list(
                self.ml_client.online_deployments.list(endpoint_name=self.endpoint_name)
            )
        return {
            "endpoint": self.endpoint_name,
            "scoring_uri": endpoint.scoring_uri,
            "traffic": {name: int(share) for name, share in (endpoint.traffic or {}).items()},
            "mirror_traffic": {name: int(share) for name, share
                               in (endpoint.mirror_traffic or {}).items() if share},
            "deployments": {
                d.name: {"model": d.model, "state": _text(d.provisioning_state),
                         "tag": (d.tags or {}).get("mlops.model"),
                         "instance_type": d.instance_type, "instance_count": d.instance_count}
                for d in deployments
            },
        }

    def _refuse_if_live(self, name: str, state: dict[str, Any], doing: str) -> None:
        share = state["traffic"].get(name, 0)
        if share > 0:
            raise DeploymentError(
                f"cannot {doing} deployment '{name}' of '{self.endpoint_name}': it carries "
                f"{share}% of the traffic {state['traffic']}"
            )

    def _delete(self, name: str) -> None:
        doing = f"deleting deployment '{name}' of '{self.endpoint_name}'"
        with azure_errors(DeploymentError, doing):
            poller = self.ml_client.online_deployments.begin_delete(
                name=name, endpoint_name=self.endpoint_name
            )
        wait(poller, self.timeout_s, DeploymentError, doing)
        logger.info("Deleted deployment %s of %s", name, self.endpoint_name)

    def put_deployment(self, name: str, model_url: str) -> dict[str, Any]:
        """Create deployment `name` serving `model_url` at 0% traffic, replacing an idle one.

        A deployment of `name` already being created with `model_url` (a retried task whose
        first attempt lost its connection while Azure ML provisioned) is waited for, not
        deleted and created again.
        """
        self._ensure_endpoint()
        state = self.state()
        self._refuse_if_live(name, state, "replace")
        current = state["deployments"].get(name)
        if current is not None and current["tag"] == model_url and current["state"] in (
                IN_FLIGHT | {"Succeeded"}):
            logger.info("Deployment %s of %s is %s with %s: waiting for it", name,
                        self.endpoint_name, current["state"], model_url)
            return self._await_provisioned(name, model_url)
        if current is not None:
            self._delete(name)  # the release before last stayed here for rollback until now
        environment = ensure_environment(self.ml_client, self.target, DeploymentError)
        doing = f"creating deployment '{name}' of '{self.endpoint_name}' with {model_url}"
        with (tempfile.TemporaryDirectory(prefix="mlops-score-") as staging,
              azure_errors(DeploymentError, doing)):
            deployment = deployment_entity(
                slot=name, endpoint_name=self.endpoint_name, model=model_url,
                environment=environment, code_dir=stage_scoring_code(Path(staging) / "code"),
                endpoint=self.spec, tags={"mlops.model": model_url},
            )
            # uploads the code folder, then returns while Azure ML provisions
            poller = self.ml_client.online_deployments.begin_create_or_update(deployment)
        try:
            created = wait(poller, self.timeout_s, DeploymentError, doing)
        except DeploymentError as exc:
            raise self._provisioning_error(name, exc) from exc
        logger.info("Deployment %s of %s serves %s", name, self.endpoint_name, model_url)
        return {"name": name, "model": model_url,
                "state": _text(getattr(created, "provisioning_state", None))}

    def _await_provisioned(self, name: str, model_url: str) -> dict[str, Any]:
        """Poll a deployment Azure ML is still provisioning until it ends."""
        doing = f"waiting for deployment '{name}' of '{self.endpoint_name}'"
        deadline = time.monotonic() + self.timeout_s
        while True:
            with azure_errors(DeploymentError, doing):
                found = self.ml_client.online_deployments.get(
                    name=name, endpoint_name=self.endpoint_name)
            status = _text(found.provisioning_state)
            if status == "Succeeded":
                return {"name": name, "model": model_url, "state": status}
            if status not in IN_FLIGHT:
                raise self._provisioning_error(
                    name, DeploymentError(f"{doing}: it ended {status}"))
            if time.monotonic() > deadline:
                raise DeploymentError(f"{doing}: still {status} after "
                                      f"{self.timeout_s / 60:.0f} min")
            time.sleep(self.poll_s)

    def container_logs(self, name: str) -> dict[str, str]:
        """The last lines of each container of deployment `name` (what failed to start)."""
        logs = {}
        for container in LOG_CONTAINERS:
            with azure_errors(DeploymentError, f"reading the {container} logs of '{name}'"):
                logs[container] = self.ml_client.online_deployments.get_logs(
                    name=name, endpoint_name=self.endpoint_name, lines=LOG_LINES,
                    container_type=container,
                )
        return logs

    def _provisioning_error(self, name: str, cause: DeploymentError) -> ProvisioningError:
        """`cause` with the deployment's container logs, in the message and as `logs`."""
        try:
            logs = self.container_logs(name)
        except DeploymentError as exc:
            logs = {"(logs unavailable)": str(exc)}
        shown = "\n".join(f"--- {c} (last {LOG_LINES} lines) ---\n{text.strip()}"
                          for c, text in logs.items())
        return ProvisioningError(f"{cause}\n{shown}", logs)

    def delete_deployment(self, name: str) -> dict[str, Any]:
        """Remove a deployment that carries no traffic (a failed candidate)."""
        self._refuse_if_live(name, self.state(), "delete")
        self._delete(name)
        return {"deleted": name}

    def set_traffic(self, traffic: dict[str, int]) -> dict[str, int]:
        """Replace the traffic table (shares summing to 100; other deployments get 0).

        A deployment that gets live traffic loses its mirror traffic: Azure ML refuses a
        deployment with both, and a mirror of the live deployment copies requests to itself.
        """
        if sum(traffic.values()) != 100:
            raise DeploymentError(f"traffic {traffic} does not sum to 100")
        endpoint = self._endpoint()
        if endpoint is None:
            raise EndpointError(f"endpoint '{self.endpoint_name}' does not exist")
        table = {name: 0 for name in endpoint.traffic or {}}
        table.update({name: int(share) for name, share in traffic.items()})
        endpoint.traffic = dict(table)
        mirror = {k: int(v) for k, v in (endpoint.mirror_traffic or {}).items() if v}
        kept = {k: v for k, v in mirror.items() if not table.get(k)}
        if kept != mirror:
            logger.info("Mirror traffic of %s: %s -> %s", self.endpoint_name, mirror, kept)
        endpoint.mirror_traffic = kept
        self._update(endpoint, f"setting the traffic of '{self.endpoint_name}' to {table}")
        logger.info("Traffic of %s now %s", self.endpoint_name, table)
        return table

    def set_mirror_traffic(self, mirror: dict[str, int]) -> dict[str, int]:
        """Set the endpoint's mirror traffic (``{}`` turns it off); Azure ML enforces its rules
        (one deployment, at most 50%, none with live traffic) and its refusal is raised."""
        endpoint = self._endpoint()
        if endpoint is None:
            raise EndpointError(f"endpoint '{self.endpoint_name}' does not exist")
        table = {name: int(share) for name, share in mirror.items() if share}
        endpoint.mirror_traffic = dict(table)
        self._update(endpoint,
                     f"setting the mirror traffic of '{self.endpoint_name}' to {table}")
        logger.info("Mirror traffic of %s now %s", self.endpoint_name, table)
        return table

    def _update(self, endpoint: ManagedOnlineEndpoint, doing: str) -> None:
        """Send the changed endpoint to Azure ML and wait for it (`doing` names the change
        in a refusal or a timeout)."""
        with azure_errors(DeploymentError, doing):
            poller = self.ml_client.online_endpoints.begin_create_or_update(endpoint)
        wait(poller, self.timeout_s, DeploymentError, doing)

    def close(self) -> None:
        """Close the Azure Monitor client a hold opened; scoring opens its own request, and
        the MLClient's pipeline belongs to the workspace client the backends share."""
        if self._monitor is not None:
            self._monitor.client.close()
            self._monitor = None

    def metrics(self) -> dict[str, DeploymentStats]:
        """Each deployment's minutes in Azure Monitor since this client's first reading."""
        if self._monitor is None:
            endpoint = self._endpoint()
            if endpoint is None or not endpoint.id or not endpoint.location:
                raise EndpointError(f"endpoint '{self.endpoint_name}' does not exist (or Azure "
                                    "ML gave no resource id and region for it): no metrics")
            self._monitor = azure_monitor.EndpointMonitor(
                azure_monitor.metrics_client(endpoint.location), endpoint.id, self.endpoint_name)
        return self._monitor.read()

    def _scoring(self) -> tuple[str, str]:
        """The endpoint's scoring URI and primary key."""
        endpoint = self._endpoint()
        if endpoint is None or not endpoint.scoring_uri:
            raise EndpointError(f"endpoint '{self.endpoint_name}' does not exist")
        with azure_errors(EndpointError, f"reading the keys of '{self.endpoint_name}'"):
            keys = self.ml_client.online_endpoints.get_keys(name=self.endpoint_name)
        return endpoint.scoring_uri, keys.primary_key

    def score(self, payload: Any, deployment: str | None = None,
              timeout_s: float = 90.0) -> dict[str, Any]:
        """POST `payload` to the scoring URI; `deployment` bypasses the traffic table."""
        where = f"'{self.endpoint_name}'" + (f" deployment '{deployment}'" if deployment else "")
        uri, key = self._scoring()
        headers = {"Authorization": f"Bearer {key}"}
        if deployment:
            headers[DEPLOYMENT_HEADER] = deployment
        try:
            response = httpx.post(uri, json=payload, headers=headers, timeout=timeout_s)
        except httpx.HTTPError as exc:
            raise EndpointError(f"scoring on {where} at {uri} failed: {exc}") from exc
        if response.status_code >= 400:
            raise EndpointError(
                f"scoring on {where} answered HTTP {response.status_code}: "
                f"{_error_text(response)}"
            )
        try:
            answer = response.json()
        except ValueError as exc:
            raise EndpointError(
                f"{where} answered no JSON: {shorten(response.text, 200)!r}") from exc
        if not isinstance(answer, dict):
            raise EndpointError(f"{where} answered {type(answer).__name__}, not a JSON object")
        return answer


def _error_text(response: httpx.Response) -> str:
    """The message of an error answer: ours (``{"error": "..."}``), Azure's router's
    (``{"message": "..."}``), or the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return shorten(response.text, 200) or "(empty body)"
    if isinstance(body, dict):
        for field in ("error", "message"):
            value = body.get(field)
            if isinstance(value, dict):
                value = value.get("message")
            if value:
                return shorten(str(value), 200)
    return shorten(str(body), 200)
