"""The managed online endpoint, behind the same calls as the local endpoint client
(``mlops.endpoint.local.LocalEndpointClient``).

The deploy tasks run the protocol of DESIGN.md with these calls, unchanged:

- ``state()``: the traffic table (every deployment, 0 for those without traffic);
- ``put_deployment(slot, model)``: creates the endpoint if it is missing (key auth), deletes the
  slot's previous deployment (the release before last, or a failed candidate: never one with
  traffic) and creates the new one from ``deployments/azureml/deployment.yml`` with the model,
  the staged code folder and the pinned environment; returns once Azure ML has provisioned it;
- ``score(payload, deployment=slot)``: the smoke test, through ``invoke`` with the deployment's
  name, which bypasses the traffic table;
- ``set_traffic(table)``: moves traffic (and rolls it back);
- ``delete_deployment(slot)``: removes a failed candidate.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from azure.ai.ml import MLClient
from azure.ai.ml.constants._endpoint import EndpointInvokeFields
from azure.ai.ml.entities import ManagedOnlineEndpoint
from azure.core.exceptions import ResourceNotFoundError

from mlops.azureml.client import azure_errors, ensure_environment, wait, workspace_client
from mlops.azureml.entities import deployment_entity, endpoint_entity
from mlops.azureml.shipping import stage_scoring_code
from mlops.core.errors import DeploymentError, EndpointError
from mlops.core.settings import Settings
from mlops.core.spec import PipelineSpec
from mlops.core.spec.targets import AzureMLSpec, EndpointSpec
from mlops.endpoint.metrics import DeploymentStats

logger = logging.getLogger(__name__)


def _text(value: Any) -> str | None:
    """An SDK enum (provisioning states) as the plain string Azure sends."""
    return None if value is None else str(getattr(value, "value", value))


def _forget_stale_routing() -> None:
    """Drop a deployment header an earlier ``invoke`` left behind.

    azure-ai-ml's ``OnlineEndpointOperations.invoke`` (1.35.2) writes its headers into the
    class-level dict ``EndpointInvokeFields.DEFAULT_HEADER``, so once a call named a deployment,
    every later call in the process without one is still routed to that deployment.
    """
    EndpointInvokeFields.DEFAULT_HEADER.pop(EndpointInvokeFields.MODEL_DEPLOYMENT, None)


class AzureMLEndpointClient:
    """Deployments, traffic and scoring of one managed online endpoint.

    Args:
        ml_client: a client of the endpoint's workspace.
        endpoint_name: the endpoint (created on the first deployment if missing).
        endpoint: the spec's endpoint section (instance type and count, time limit).
        target: the spec's workspace section (which environment to run).
    """

    def __init__(
        self, ml_client: MLClient, endpoint_name: str, *, endpoint: EndpointSpec,
        target: AzureMLSpec,
    ) -> None:
        self.ml_client = ml_client
        self.endpoint_name = endpoint_name
        self.spec = endpoint
        self.target = target
        self.timeout_s = endpoint.deploy_timeout_minutes * 60.0

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
        with azure_errors(EndpointError, doing):
            poller = self.ml_client.online_endpoints.begin_create_or_update(
                endpoint_entity(self.endpoint_name)
            )
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
            "deployments": {
                d.name: {"model": d.model, "state": _text(d.provisioning_state),
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
        """Create deployment `name` serving `model_url` at 0% traffic, replacing an idle one."""
        self._ensure_endpoint()
        state = self.state()
        self._refuse_if_live(name, state, "replace")
        if name in state["deployments"]:
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
            raise DeploymentError(
                f"{exc}; its logs: az ml online-deployment get-logs -n {name} "
                f"-e {self.endpoint_name}"
            ) from exc
        logger.info("Deployment %s of %s serves %s", name, self.endpoint_name, model_url)
        return {"name": name, "model": model_url,
                "state": _text(getattr(created, "provisioning_state", None))}

    def delete_deployment(self, name: str) -> dict[str, Any]:
        """Remove a deployment that carries no traffic (a failed candidate)."""
        self._refuse_if_live(name, self.state(), "delete")
        self._delete(name)
        return {"deleted": name}

    def set_traffic(self, traffic: dict[str, int]) -> dict[str, int]:
        """Replace the traffic table (shares summing to 100; other deployments get 0)."""
        if sum(traffic.values()) != 100:
            raise DeploymentError(f"traffic {traffic} does not sum to 100")
        endpoint = self._endpoint()
        if endpoint is None:
            raise EndpointError(f"endpoint '{self.endpoint_name}' does not exist")
        table = {name: 0 for name in endpoint.traffic or {}}
        table.update({name: int(share) for name, share in traffic.items()})
        endpoint.traffic = dict(table)
        doing = f"setting the traffic of '{self.endpoint_name}' to {table}"
        with azure_errors(DeploymentError, doing):
            poller = self.ml_client.online_endpoints.begin_create_or_update(endpoint)
        wait(poller, self.timeout_s, DeploymentError, doing)
        logger.info("Traffic of %s now %s", self.endpoint_name, table)
        return table

    def metrics(self) -> dict[str, DeploymentStats]:
        """Not read yet: on Azure ML these numbers live in Azure Monitor, which this client
        does not query, so a release with held traffic steps stops before moving traffic."""
        raise EndpointError(
            f"live deployment metrics of '{self.endpoint_name}' are not available on the "
            "azureml backend yet (Azure Monitor); use traffic steps without holds"
        )

    def score(self, payload: Any, deployment: str | None = None) -> dict[str, Any]:
        """Score through Azure ML's invoke; `deployment` bypasses the traffic table."""
        where = f"'{self.endpoint_name}'" + (f" deployment '{deployment}'" if deployment else "")
        fd, request_file = tempfile.mkstemp(prefix="mlops-request-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(payload, fh)
            if deployment is None:
                _forget_stale_routing()
            with azure_errors(EndpointError, f"scoring on {where}"):
                body = self.ml_client.online_endpoints.invoke(
                    endpoint_name=self.endpoint_name, request_file=request_file,
                    deployment_name=deployment,
                )
        finally:
            os.unlink(request_file)
        try:
            answer = json.loads(body)
        except ValueError as exc:
            raise EndpointError(f"{where} answered no JSON object: {body[:200]!r}") from exc
        if not isinstance(answer, dict):
            raise EndpointError(f"{where} answered {type(answer).__name__}, not a JSON object")
        return answer
